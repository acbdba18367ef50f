import { z } from 'zod';
import { AgentRole } from '../enums.js';
import { InvalidTaskError } from '../errors.js';
import { prioritySchema, retrySchema, roleSchema } from '../options.js';
import type { TaskSpec } from '../types.js';
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
  preemptible: z.boolean({ error: 'must be a boolean' }).optional(),
});

/**
 * Validates a submitted task. @throws InvalidTaskError naming the field.
 *
 * The zod schema above is the contract and produces every error message. Submitting is the
 * hottest call of the library, though, and a zod parse costs more than the rest of a task's
 * scheduling, so the common shape (only the fields below, with plainly valid values) is first
 * recognised by `isPlainlyValid`, which allocates nothing. Anything it does not recognise,
 * valid or not, goes through zod.
 */
export function validateTaskSpec(spec: TaskSpec): void {
  if (typeof spec !== 'object' || spec === null) throw new InvalidTaskError('task', 'must be an object with at least a type');
  if (isPlainlyValid(spec)) return;
  const checked = taskSpecSchema.safeParse(spec);
  if (!checked.success) {
    const { field, detail } = describeIssue(checked.error, spec);
    throw new InvalidTaskError(field, detail);
  }
}

const ROLES: ReadonlySet<string> = new Set(Object.values(AgentRole));

/** True only for specs the schema certainly accepts; false means "ask zod", not "invalid". */
function isPlainlyValid(spec: TaskSpec): boolean {
  for (const key in spec) {
    const value = (spec as unknown as Record<string, unknown>)[key];
    switch (key) {
      case 'type':
      case 'id':
        if (typeof value !== 'string' || value.length === 0) return false;
        break;
      case 'priority':
        if (value !== undefined && (typeof value !== 'number' || !(value >= 0 && value <= 4) || (value | 0) !== value)) return false;
        break;
      case 'capabilities':
        if (value !== undefined) {
          if (!Array.isArray(value)) return false;
          for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') return false;
        }
        break;
      case 'timeout':
        if (value !== undefined && (typeof value !== 'number' || !(value >= 0 && value < Infinity))) return false;
        break;
      case 'waitForAgent':
      case 'preemptible':
        if (value !== undefined && typeof value !== 'boolean') return false;
        break;
      case 'preferredRole':
        if (value !== undefined && !ROLES.has(value as string)) return false;
        break;
      case 'payload':
        break;
      case 'metadata':
        if (value !== undefined && !isPlainObject(value)) return false;
        break;
      default:
        return false;
    }
  }
  return typeof spec.type === 'string';
}

/** An object literal (or a null-prototype object): what `metadata` must be. */
function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}
