import { z } from 'zod';
import type { AgentRole, TaskPriority } from '../enums.js';
import { InvalidTaskError } from '../errors.js';
import { prioritySchema, retrySchema, roleSchema } from '../options.js';
import type { RetryPolicy, TaskSpec } from '../types.js';
import { describeIssue } from '../util/validation.js';

const taskSpecSchema = z.strictObject({
  type: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }),
  id: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }).optional(),
  priority: prioritySchema.optional(),
  capabilities: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of strings' }).optional(),
  payload: z.unknown().optional(),
  timeout: z.number({ error: 'must be a number of ms' }).finite().min(0, { error: 'must be ≥ 0 ms (0 = no timeout)' }).optional(),
  retry: retrySchema.optional(),
  metadata: z.record(z.string(), z.unknown(), { error: 'must be a plain object' }).optional(),
  preferredRole: roleSchema.optional(),
  waitForAgent: z.boolean({ error: 'must be a boolean' }).optional(),
});

/** A validated task with defaults applied. */
export interface ParsedTask {
  type: string;
  id: string | undefined;
  priority: TaskPriority;
  capabilities: readonly string[];
  payload: unknown;
  timeout: number;
  retry: RetryPolicy;
  metadata: Readonly<Record<string, unknown>>;
  preferredRole: AgentRole | undefined;
  waitForAgent: boolean;
}

export interface TaskDefaults {
  priority: TaskPriority;
  timeout: number;
  retry: RetryPolicy;
}

const NO_CAPABILITIES: readonly string[] = Object.freeze([]);
const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({});

/** Validates a submitted task. @throws InvalidTaskError naming the field. */
export function parseTaskSpec(spec: TaskSpec, defaults: TaskDefaults): ParsedTask {
  if (typeof spec !== 'object' || spec === null) throw new InvalidTaskError('task', 'must be an object with at least a type');
  const checked = taskSpecSchema.safeParse(spec);
  if (!checked.success) {
    const { field, detail } = describeIssue(checked.error, spec);
    throw new InvalidTaskError(field, detail);
  }
  // The input is used, not zod's copy: it is already proven valid, and copying costs per task.
  return {
    type: spec.type,
    id: spec.id,
    priority: spec.priority ?? defaults.priority,
    capabilities: spec.capabilities ?? NO_CAPABILITIES,
    payload: spec.payload,
    timeout: spec.timeout ?? defaults.timeout,
    retry: spec.retry === undefined ? defaults.retry : { ...defaults.retry, ...spec.retry },
    metadata: spec.metadata ?? NO_METADATA,
    preferredRole: spec.preferredRole,
    waitForAgent: spec.waitForAgent ?? false,
  };
}
