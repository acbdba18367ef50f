import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { InvalidAgentError } from '../errors.js';
import { roleSchema } from '../options.js';
import type { RateLimit } from '../resilience/rate-limiter.js';
import type { AgentExecution } from '../routing/agent.js';
import type { AgentHandler, AgentSpec } from '../types.js';
import { describeIssue } from '../util/validation.js';
import { moduleProblem } from '../workers/module-probe.js';

const agentSpecSchema = z.strictObject({
  agentId: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }),
  role: roleSchema,
  capabilities: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of strings' }),
  maxConcurrent: z.int({ error: 'must be an integer ≥ 1' }).min(1, { error: 'must be an integer ≥ 1' }).optional(),
  handler: z.custom<AgentHandler>((value) => typeof value === 'function', { error: 'must be a function (task, ctx) => result' }).optional(),
  module: z.union([z.string().min(1), z.instanceof(URL)], { error: 'must be a file path or a file: URL' }).optional(),
  rateLimit: z
    .strictObject({
      max: z.int({ error: 'must be an integer ≥ 1' }).min(1, { error: 'must be an integer ≥ 1' }),
      perMs: z.number({ error: 'must be a number of ms > 0' }).finite().positive({ error: 'must be a number of ms > 0' }),
    })
    .optional(),
});

export interface ParsedAgent {
  agentId: string;
  role: AgentSpec['role'];
  capabilities: readonly string[];
  maxConcurrent: number;
  execution: AgentExecution;
  rateLimit: RateLimit | undefined;
}

/** Validates an agent definition. @throws InvalidAgentError naming the field. */
export function parseAgentSpec(spec: AgentSpec): ParsedAgent {
  if (typeof spec !== 'object' || spec === null) throw new InvalidAgentError('agent', 'must be an object');
  const checked = agentSpecSchema.safeParse(spec);
  if (!checked.success) {
    const { field, detail } = describeIssue(checked.error, spec);
    throw new InvalidAgentError(field, detail);
  }
  if ((spec.handler === undefined) === (spec.module === undefined)) {
    throw new InvalidAgentError('handler', 'exactly one of handler (in-process) or module (worker threads) must be given');
  }
  return {
    agentId: spec.agentId,
    role: spec.role,
    capabilities: Object.freeze([...new Set(spec.capabilities)]),
    maxConcurrent: spec.maxConcurrent ?? 1,
    execution: spec.handler !== undefined ? { kind: 'inline', handler: spec.handler } : { kind: 'thread', module: moduleUrl(spec.module!) },
    rateLimit: spec.rateLimit,
  };
}

/** A module path or URL as an absolute URL string, checked to load with a default export function. */
function moduleUrl(module: string | URL): string {
  let url: URL;
  if (module instanceof URL) url = module;
  else if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !isAbsolute(module)) url = new URL(module);
  else url = pathToFileURL(resolve(module));
  const problem = moduleProblem(url.href);
  if (problem !== null) throw new InvalidAgentError('module', problem);
  return url.href;
}
