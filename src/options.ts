import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { z } from 'zod';
import { AgentRole, PRIORITY_LEVELS, TaskPriority, type AssignmentStrategy } from './enums.js';
import { InvalidOptionsError } from './errors.js';
import { BREAKER_DEFAULTS, circuitBreakerSchema, type ResolvedBreakerOptions } from './resilience/breaker-options.js';
import type { Logger } from './telemetry/logger.js';
import type { RetryPolicy } from './types.js';
import { count, ms } from './util/schema.js';
import { describeIssue } from './util/validation.js';


export const prioritySchema: z.ZodType<TaskPriority> = z
  .int({ error: `must be an integer 0..${PRIORITY_LEVELS - 1} (TaskPriority)` })
  .min(0, { error: `must be 0..${PRIORITY_LEVELS - 1}` })
  .max(PRIORITY_LEVELS - 1, { error: `must be 0..${PRIORITY_LEVELS - 1}` }) as unknown as z.ZodType<TaskPriority>;

export const roleSchema = z.enum(Object.values(AgentRole) as [AgentRole, ...AgentRole[]], {
  error: `must be one of AgentRole (${Object.values(AgentRole).join(', ')})`,
});

export const retrySchema = z.strictObject({
  maxAttempts: count(1).optional(),
  initialDelay: ms('delay before the second attempt').optional(),
  factor: z.number({ error: 'must be a number ≥ 1' }).min(1, { error: 'must be a number ≥ 1' }).optional(),
  maxDelay: ms('longest delay').optional(),
  jitter: z.number({ error: 'must be a number 0..1' }).min(0, { error: 'must be a number 0..1' }).max(1, { error: 'must be a number 0..1' }).optional(),
});

const flag = z.boolean({ error: 'must be true or false' });
/** An object with these methods (a provider or logger from another library: checked by shape, not class). */
const withMethods = <T>(methods: readonly string[], optional: readonly string[], error: string) =>
  z.custom<T>((value) => {
    try {
      return (
        typeof value === 'object' &&
        value !== null &&
        methods.every((name) => typeof (value as Record<string, unknown>)[name] === 'function') &&
        optional.every((name) => (value as Record<string, unknown>)[name] === undefined || typeof (value as Record<string, unknown>)[name] === 'function')
      );
    } catch {
      // A getter (or a proxy's trap) threw: not one.
      return false;
    }
  }, { error });
const megabytes = z.number({ error: 'must be a number of MB' }).positive({ error: 'must be a number of MB > 0' });

const optionsSchema = z.strictObject({
  workerPool: z
    .strictObject({
      minWorkers: count(1).optional(),
      maxWorkers: count(1).optional(),
      assignmentStrategy: z
        .enum(['least-busy', 'round-robin', 'random', 'adaptive'], { error: "must be 'least-busy', 'round-robin', 'random' or 'adaptive'" })
        .optional(),
      adaptiveHalfLife: count(1).optional(),
      stuckGrace: ms('grace after a timeout before a slot is reclaimed').optional(),
      idleTimeout: ms('idle time before a worker above minWorkers retires').optional(),
      healthCheckInterval: ms('between health checks of busy workers').min(1, { error: 'must be ≥ 1 ms' }).optional(),
      threadBatchSize: count(1).optional(),
      resourceLimits: z
        .strictObject({
          maxOldGenerationSizeMb: megabytes.optional(),
          maxYoungGenerationSizeMb: megabytes.optional(),
          codeRangeSizeMb: megabytes.optional(),
          stackSizeMb: megabytes.optional(),
        })
        .optional(),
    })
    .optional(),
  taskQueue: z
    .strictObject({
      // z.number() refuses Infinity, the documented default.
      maxSize: z
        .custom<number>((n) => n === Infinity || (Number.isInteger(n) && (n as number) >= 1), { error: 'must be an integer ≥ 1 or Infinity' })
        .optional(),
      defaultPriority: prioritySchema.optional(),
      defaultTimeout: ms('0 = no timeout').optional(),
      retry: retrySchema.optional(),
      agingMs: ms('0 = no aging').optional(),
      preemptibleFrom: prioritySchema.optional(),
    })
    .optional(),
  preemption: z
    .strictObject({
      minGap: count(1).max(PRIORITY_LEVELS - 1, { error: `must be at most ${PRIORITY_LEVELS - 1}` }).optional(),
      graceMs: ms('how long a preempted handler may take to give its slot back').optional(),
      maxPerTask: count(0).optional(),
    })
    .optional(),
  streaming: z
    .strictObject({
      enableDeltaCompression: flag.optional(),
      snapshotInterval: count(1).optional(),
      backpressureThreshold: count(1).optional(),
      retainCompletedMs: ms('how long a finished task stays observable by id').optional(),
      retainCompletedMax: count(0).optional(),
      eventHistory: count(0).optional(),
    })
    .optional(),
  checkpointing: z
    .strictObject({
      enabled: flag.optional(),
      interval: ms('between automatic checkpoints').optional(),
    })
    .optional(),
  circuitBreaker: z
    .strictObject({
      enabled: flag.optional(),
      ...circuitBreakerSchema.shape,
    })
    .optional(),
  store: z
    .discriminatedUnion(
      'type',
      [
        z.strictObject({ type: z.literal('memory') }),
        z.strictObject({
          type: z.literal('sqlite'),
          path: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }),
          synchronous: z.enum(['off', 'normal', 'full'], { error: "must be 'off', 'normal' or 'full'" }).optional(),
          flushIntervalMs: ms('longest wait before queued writes are committed').optional(),
          retainFinishedMs: ms('how long rows of finished tasks are kept').optional(),
        }),
        z.strictObject({
          type: z.literal('postgres'),
          connectionString: z.string({ error: 'must be a postgres:// connection string' }).min(1, { error: 'must be a postgres:// connection string' }),
          schema: z
            .string({ error: 'must be a schema name' })
            .regex(/^[a-z_][a-z0-9_]{0,47}$/, { error: 'must be lower-case letters, digits and _, starting with a letter or _, at most 48 characters' })
            .optional(),
          leaseMs: ms('how long a claim holds without a heartbeat').min(100, { error: 'must be ≥ 100 ms' }).optional(),
          pollIntervalMs: ms('between fallback polls for work').min(10, { error: 'must be ≥ 10 ms' }).optional(),
          prefetch: count(1).optional(),
          maxBatch: count(1).max(5_000, { error: 'must be at most 5000' }).optional(),
          poolSize: count(2).max(100, { error: 'must be at most 100' }).optional(),
        }),
      ],
      { error: "must be { type: 'memory' }, { type: 'sqlite', path } or { type: 'postgres', connectionString }" },
    )
    .optional(),
  audit: z
    .strictObject({
      enabled: flag.optional(),
      retainMs: ms('how long audit entries are kept').optional(),
      maxEvents: count(0).optional(),
    })
    .optional(),
  telemetry: z
    .strictObject({
      enabled: flag.optional(),
      tracerProvider: withMethods<TracerProvider>(['getTracer'], [], 'must be an OpenTelemetry TracerProvider (an object with getTracer())').optional(),
      meterProvider: withMethods<MeterProvider>(['getMeter'], [], 'must be an OpenTelemetry MeterProvider (an object with getMeter())').optional(),
    })
    .optional(),
  logger: withMethods<Logger>(['debug', 'info', 'warn', 'error'], ['child'], 'must be a logger with debug, info, warn and error methods (a pino logger, say)').optional(),
});

/** Limits of each worker thread, as node:worker_threads `resourceLimits` takes them (declared here so users' types need no @types/node). */
export interface ThreadResourceLimits {
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  codeRangeSizeMb?: number;
  stackSizeMb?: number;
}

/** Options of `createParallelOrchestrator`. Every field is optional. */
export interface OrchestratorOptions {
  workerPool?: {
    /** Execution slots kept even when idle. @default 2 (or maxWorkers when that is given and lower) */
    minWorkers?: number;
    /** Most tasks running at once across all agents. @default 10 */
    maxWorkers?: number;
    /**
     * How a task chooses among its capable agents with room: 'least-busy' (lowest active /
     * maxConcurrent), 'round-robin', 'random', or 'adaptive' (the one expected to deliver a
     * successful result soonest, learned from outcomes: see docs/routing.md). @default 'least-busy'
     */
    assignmentStrategy?: AssignmentStrategy;
    /**
     * With 'adaptive': how fast it forgets, in outcomes per capable agent. A run's time and
     * outcome count half once this many outcomes per agent of the same capabilities followed
     * (with 3 capable agents and the default, after 60 outcomes). Lower adapts and re-explores
     * sooner, higher averages out noisier run times. @default 20
     */
    adaptiveHalfLife?: number;
    /**
     * After a task's timeout or cancellation, how long its handler may keep its worker before the
     * worker counts as stuck: an in-process slot is reclaimed, a thread is terminated and replaced (ms).
     * @default 5000
     */
    stuckGrace?: number;
    /** A worker above `minWorkers` idle this long is retired (ms). @default 30000 */
    idleTimeout?: number;
    /** How often busy workers are checked for being stuck (ms). @default 1000 */
    healthCheckInterval?: number;
    /**
     * Most tasks handed to one worker thread at a time (fewer when its tasks take longer: about
     * 5 ms of work). Tasks run one after another in the thread; handing over several per message
     * saves a round trip per task when the queue is deep. @default 64
     */
    threadBatchSize?: number;
    /** Limits of each worker thread (see node:worker_threads `resourceLimits`); a thread exceeding them is replaced. */
    resourceLimits?: ThreadResourceLimits;
  };
  taskQueue?: {
    /** Most queued (not yet running) tasks; `submit` then throws `QueueFullError`. @default Infinity */
    maxSize?: number;
    /** Priority of a task that names none. @default TaskPriority.NORMAL */
    defaultPriority?: TaskPriority;
    /** Run-time limit of a task that names none, in ms; 0 = none. @default 0 */
    defaultTimeout?: number;
    /** Default retry policy. */
    retry?: Partial<RetryPolicy>;
    /** A task queued this long (ms) moves up one priority level, so low priorities never starve; 0 = off. @default 0 */
    agingMs?: number;
    /**
     * Tasks at this priority or less urgent are preemptible unless they say `preemptible: false`
     * (e.g. `TaskPriority.LOW`). @default none: only tasks submitted with `preemptible: true`
     */
    preemptibleFrom?: TaskPriority;
  };
  /** When a waiting task may take the slot of a running preemptible one. See docs/preemption.md. */
  preemption?: {
    /** The waiting task must be at least this many levels more urgent, so NORMAL work does not churn LOW work. @default 2 */
    minGap?: number;
    /**
     * How long a preempted handler has to return after its signal aborted (ms); then an
     * in-process slot is reclaimed, a thread terminated and replaced. @default 5000
     */
    graceMs?: number;
    /**
     * A task preempted this many times without a checkpoint in between is not preempted again
     * until it checkpoints: it would redo the same work each time (no thrashing). A task that
     * checkpoints between preemptions loses only the work since its checkpoint and may be
     * preempted again and again; one that never checkpoints, at most this many times. Counted in
     * memory by the process that runs the task (a task recovered, or taken over by another node,
     * starts from 0). `0`: no task is preempted. @default 3
     */
    maxPerTask?: number;
  };
  streaming?: {
    /** Send JSON Patch deltas rather than full states. @default true */
    enableDeltaCompression?: boolean;
    /** A full snapshot every this many updates. @default 10 */
    snapshotInterval?: number;
    /**
     * Updates a buffered subscriber (`subscribe()`, async iteration, `events()`) may fall behind by;
     * past it, its queued updates are dropped and replaced by one fresh snapshot. @default 1000
     */
    backpressureThreshold?: number;
    /** How long a finished task stays findable by id (`observe`, `getTask`) with its final state (ms). @default 60000 */
    retainCompletedMs?: number;
    /** Most finished tasks kept findable at once; the oldest go first. @default 10000 */
    retainCompletedMax?: number;
    /** Events `orchestrator.events({ fromSequence })` can replay, once `events()` has been called. @default 10000 */
    eventHistory?: number;
  };
  checkpointing?: {
    /** Checkpoint the latest progress state of running tasks every `interval` ms. @default false */
    enabled?: boolean;
    /** @default 5000 */
    interval?: number;
  };
  circuitBreaker?: {
    /** Consecutive failures that open an agent's circuit. @default 5 */
    failureThreshold?: number;
    /** Successes in half-open state that close it. @default 2 */
    successThreshold?: number;
    /** Time open before a probe is let through, in ms; doubles on each consecutive trip. @default 30000 */
    resetTimeout?: number;
    /** Longest open time however often the circuit trips, in ms. @default 300000 */
    maxResetTimeout?: number;
    /** Probe tasks running at once while half-open. @default 1 */
    halfOpenMaxConcurrent?: number;
    /** Per-agent breakers on or off. @default true */
    enabled?: boolean;
  };
  /**
   * Where tasks, checkpoints, the audit trail and dead letters are kept. `memory` (the default)
   * survives nothing; `sqlite` (needs the optional dependency better-sqlite3) survives a crash:
   * `start()` queues again the tasks that had not finished. @default { type: 'memory' }
   */
  store?: StoreOptions;
  audit?: {
    /** Append every task transition and circuit change to the store's audit trail. @default true */
    enabled?: boolean;
    /** Entries older than this are removed (ms). @default 604800000 (7 days) */
    retainMs?: number;
    /**
     * Most entries kept; the oldest go first. @default 10000 with the memory store (a larger ring
     * keeps more objects alive across garbage collections and slows a busy orchestrator), 1000000 with SQLite and PostgreSQL
     */
    maxEvents?: number;
  };
  /**
   * OpenTelemetry spans (one per task attempt) and metrics, through `@opentelemetry/api`: they go
   * nowhere until an SDK is registered. See docs/telemetry.md.
   */
  telemetry?: {
    /** @default true */
    enabled?: boolean;
    /** Where spans go. @default the global provider (`trace.setGlobalTracerProvider`), even one registered later */
    tracerProvider?: TracerProvider;
    /** Where metrics go. @default the global provider (`metrics.setGlobalMeterProvider`), which must be registered before the orchestrator is created */
    meterProvider?: MeterProvider;
  };
  /**
   * A pino-compatible logger (`debug`, `info`, `warn`, `error`, optional `child`) for what the
   * orchestrator reports: store errors, worker crashes, stuck workers, circuit changes, lost
   * claims... (docs/telemetry.md lists them by level). Silent without one.
   */
  logger?: Logger;
}

/** The store option. */
export type StoreOptions =
  | { type: 'memory' }
  | PostgresStoreOptions
  | {
    type: 'sqlite';
    /** The database file; created when missing. */
    path: string;
    /**
     * PRAGMA synchronous: 'normal' (the default, with WAL) loses no commit when the process dies,
     * but may lose the last commits if the machine loses power; 'full' syncs every commit to disk;
     * 'off' leaves flushing to the OS.
     */
    synchronous?: 'off' | 'normal' | 'full';
    /** Longest wait before queued writes are committed in one transaction (ms). @default 2 */
    flushIntervalMs?: number;
    /** Rows of finished tasks older than this are deleted, at start() and hourly (ms). @default 604800000 (7 days) */
    retainFinishedMs?: number;
  };

/**
 * Several processes on several machines with the same connection string and schema act as one
 * orchestrator (needs the optional dependency pg). See docs/distributed.md.
 */
export interface PostgresStoreOptions {
  type: 'postgres';
  /** e.g. `postgres://user@host:5432/db`. */
  connectionString: string;
  /** The schema holding the tables; created and migrated by the library. @default 'parallel_orchestrator' */
  schema?: string;
  /** How long a claim holds without the node's heartbeat, which extends it every third of this (ms). @default 5000 */
  leaseMs?: number;
  /** Slow poll for work, covering notifications missed while a connection was down (ms). @default 2000 */
  pollIntervalMs?: number;
  /** Most tasks a node claims ahead of its free slots. @default 500 */
  prefetch?: number;
  /** Most rows claimed or written in one statement. @default 500 */
  maxBatch?: number;
  /** Connections of the node's pool (plus one that listens). @default 8 */
  poolSize?: number;
}

/** `workerPool.assignmentStrategy` with `adaptiveHalfLife`, as routing takes them. */
export interface RoutingStrategy {
  readonly name: AssignmentStrategy;
  /** Used by 'adaptive' only. */
  readonly halfLife: number;
}

/** Options with every default filled in. */
export interface ResolvedOptions {
  workerPool: {
    minWorkers: number;
    maxWorkers: number;
    assignmentStrategy: RoutingStrategy;
    stuckGrace: number;
    idleTimeout: number;
    healthCheckInterval: number;
    threadBatchSize: number;
    resourceLimits: ThreadResourceLimits | undefined;
  };
  taskQueue: { maxSize: number; defaultPriority: TaskPriority; defaultTimeout: number; retry: RetryPolicy; agingMs: number; preemptibleFrom: TaskPriority | undefined };
  preemption: { minGap: number; graceMs: number; maxPerTask: number };
  streaming: {
    enableDeltaCompression: boolean;
    snapshotInterval: number;
    backpressureThreshold: number;
    retainCompletedMs: number;
    retainCompletedMax: number;
    eventHistory: number;
  };
  checkpointing: { enabled: boolean; interval: number };
  circuitBreaker: ResolvedBreakerOptions & { enabled: boolean };
  store: StoreOptions;
  audit: { enabled: boolean; retainMs: number; maxEvents: number };
  telemetry: { enabled: boolean; tracerProvider: TracerProvider | undefined; meterProvider: MeterProvider | undefined };
  logger: Logger | undefined;
}

const DEFAULT_RETRY = {
  maxAttempts: 3,
  initialDelay: 100,
  factor: 2,
  maxDelay: 30_000,
  jitter: 0.2,
} as const satisfies RetryPolicy;

const DURABLE_AUDIT_EVENTS = 1_000_000;

const DEFAULTS = {
  workerPool: {
    minWorkers: 2,
    maxWorkers: 10,
    assignmentStrategy: { name: 'least-busy', halfLife: 20 },
    stuckGrace: 5_000,
    idleTimeout: 30_000,
    healthCheckInterval: 1_000,
    threadBatchSize: 64,
    resourceLimits: undefined,
  },
  taskQueue: { maxSize: Infinity, defaultPriority: TaskPriority.NORMAL, defaultTimeout: 0, retry: DEFAULT_RETRY, agingMs: 0, preemptibleFrom: undefined },
  preemption: { minGap: 2, graceMs: 5_000, maxPerTask: 3 },
  streaming: {
    enableDeltaCompression: true,
    snapshotInterval: 10,
    backpressureThreshold: 1000,
    retainCompletedMs: 60_000,
    retainCompletedMax: 10_000,
    eventHistory: 10_000,
  },
  checkpointing: { enabled: false, interval: 5_000 },
  circuitBreaker: { enabled: true, ...BREAKER_DEFAULTS },
  store: { type: 'memory' },
  audit: { enabled: true, retainMs: 7 * 24 * 3600 * 1000, maxEvents: 10_000 },
  telemetry: { enabled: true, tracerProvider: undefined, meterProvider: undefined },
  logger: undefined,
} as const satisfies ResolvedOptions;

/** Validates options and fills defaults. @throws InvalidOptionsError naming the field. */
export function resolveOptions(input: OrchestratorOptions | undefined): ResolvedOptions {
  const parsed = optionsSchema.safeParse(input ?? {});
  if (!parsed.success) {
    // Named 'options' when the whole argument is not an object (zod's path is then empty).
    const root = parsed.error.issues[0]!;
    const { field, detail } = describeIssue(parsed.error, input, root.path.length === 0 && root.code !== 'unrecognized_keys' ? 'options' : '');
    throw new InvalidOptionsError(field, detail);
  }
  const o = parsed.data;
  const { assignmentStrategy, adaptiveHalfLife, ...workerPool } = o.workerPool ?? {};
  const routing = DEFAULTS.workerPool.assignmentStrategy;
  const resolved: ResolvedOptions = {
    workerPool: {
      ...DEFAULTS.workerPool,
      ...workerPool,
      assignmentStrategy: { name: assignmentStrategy ?? routing.name, halfLife: adaptiveHalfLife ?? routing.halfLife },
    },
    taskQueue: { ...DEFAULTS.taskQueue, ...o.taskQueue, retry: { ...DEFAULT_RETRY, ...o.taskQueue?.retry } },
    preemption: { ...DEFAULTS.preemption, ...o.preemption },
    streaming: { ...DEFAULTS.streaming, ...o.streaming },
    checkpointing: { ...DEFAULTS.checkpointing, ...o.checkpointing },
    circuitBreaker: { ...DEFAULTS.circuitBreaker, ...o.circuitBreaker },
    store: o.store ?? DEFAULTS.store,
    audit: { ...DEFAULTS.audit, ...(o.store !== undefined && o.store.type !== 'memory' ? { maxEvents: DURABLE_AUDIT_EVENTS } : {}), ...o.audit },
    telemetry: { ...DEFAULTS.telemetry, ...o.telemetry },
    logger: o.logger,
  };
  const pool = resolved.workerPool;
  if (o.workerPool?.minWorkers !== undefined && o.workerPool.maxWorkers === undefined) pool.maxWorkers = Math.max(pool.maxWorkers, pool.minWorkers);
  if (o.workerPool?.maxWorkers !== undefined && o.workerPool.minWorkers === undefined) pool.minWorkers = Math.min(pool.minWorkers, pool.maxWorkers);
  if (pool.minWorkers > pool.maxWorkers) {
    throw new InvalidOptionsError('workerPool.minWorkers', `must be ≤ workerPool.maxWorkers (${pool.maxWorkers}) (received ${pool.minWorkers})`);
  }
  const breaker = resolved.circuitBreaker;
  if (o.circuitBreaker?.maxResetTimeout === undefined) breaker.maxResetTimeout = Math.max(breaker.maxResetTimeout, breaker.resetTimeout);
  if (breaker.maxResetTimeout < breaker.resetTimeout) {
    throw new InvalidOptionsError('circuitBreaker.maxResetTimeout', `must be ≥ circuitBreaker.resetTimeout (received ${breaker.maxResetTimeout})`);
  }
  if (resolved.taskQueue.retry.maxDelay < resolved.taskQueue.retry.initialDelay) {
    throw new InvalidOptionsError('taskQueue.retry.maxDelay', `must be ≥ taskQueue.retry.initialDelay (received ${resolved.taskQueue.retry.maxDelay})`);
  }
  return resolved;
}
