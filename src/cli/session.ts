import {
  createParallelOrchestrator,
  isOrchestratorError,
  type AgentsFile,
  type OrchestratorOptions,
  type ParallelOrchestrator,
} from '../index.js';
import type { StoreSpec } from './parse.js';
import type { Terminal } from './terminal.js';
import { EXIT, UsageError } from './usage-error.js';

/** Flags that win over an agents file's `config`. */
export interface ConfigFlags {
  store?: StoreSpec;
  maxWorkers?: number;
}

/** The orchestrator options: the file's `config` with the flags over it. */
export function mergeConfig(config: OrchestratorOptions | undefined, flags: ConfigFlags): OrchestratorOptions {
  const merged: OrchestratorOptions = { ...config };
  if (flags.store !== undefined) merged.store = flags.store;
  if (flags.maxWorkers !== undefined) {
    const pool = { ...merged.workerPool, maxWorkers: flags.maxWorkers };
    if (pool.minWorkers !== undefined && pool.minWorkers > flags.maxWorkers) pool.minWorkers = flags.maxWorkers;
    merged.workerPool = pool;
  }
  return merged;
}

/** Creates the orchestrator; bad options are a usage error naming the option. */
export function createOrchestrator(options: OrchestratorOptions, where: string): ParallelOrchestrator {
  try {
    return createParallelOrchestrator(options);
  } catch (error) {
    if (isOrchestratorError(error) && error.code === 'INVALID_OPTIONS') {
      const field = (error as { field?: string }).field ?? '';
      if (field.startsWith('store') && (options.store as { type?: string } | undefined)?.type === 'postgres') {
        throw new Error('this build has no PostgreSQL store yet (the orchestrator refused { type: "postgres" })', { cause: error });
      }
      throw new UsageError(`${where}: ${error.message}`);
    }
    throw error;
  }
}

/** Registers the file's agents; a bad one is a usage error naming it (`agents[2].capabilities ...`). */
export function registerAgents(orchestrator: ParallelOrchestrator, file: AgentsFile, path: string): void {
  file.agents.forEach((spec, i) => {
    try {
      orchestrator.registerAgent(spec);
    } catch (error) {
      if (isOrchestratorError(error) && (error.code === 'INVALID_AGENT' || error.code === 'DUPLICATE_AGENT')) {
        throw new UsageError(`--agents ${path}: agents[${i}]: ${error.message}`);
      }
      throw error;
    }
  });
}

/**
 * Handles SIGINT and SIGTERM: the first calls `stop` (a graceful stop), a second one exits at
 * once. Returns a function that removes the handlers.
 */
export function onSignals(term: Terminal, stop: (signal: NodeJS.Signals) => void): () => void {
  let received = 0;
  const handler = (signal: NodeJS.Signals) => {
    received++;
    if (received === 1) {
      stop(signal);
      return;
    }
    term.error(`porch: ${signal} again: exiting now`);
    process.exit(EXIT.interrupted);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
