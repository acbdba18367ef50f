import { z } from 'zod';
import { TaskPriority, TaskStatus } from '../enums.js';
import type { TaskSpec } from '../index.js';
import { HttpError } from './http-error.js';

const PRIORITY_NAMES = Object.keys(TaskPriority) as (keyof typeof TaskPriority)[];
const ID_MAX = 256;

const text = (what: string) =>
  z.string({ error: `must be ${what}` }).min(1, { error: `must be ${what}` }).max(ID_MAX, { error: `must be at most ${ID_MAX} characters` });

/**
 * The body of `POST /api/tasks`: a task spec as `submit()` takes it, in JSON. The shape is checked
 * here (unknown fields refused, priority also by name); the values are checked again by `submit()`,
 * whose InvalidTaskError names the field just as well.
 */
const submitSchema = z.strictObject({
  type: text('a non-empty string'),
  id: text('a non-empty string').optional(),
  priority: z
    .union([z.number(), z.enum(PRIORITY_NAMES)], { error: `must be 0..4 or one of ${PRIORITY_NAMES.join(', ')}` })
    .optional(),
  capabilities: z.array(z.string({ error: 'must be strings' }), { error: 'must be an array of strings' }).optional(),
  payload: z.unknown().optional(),
  timeout: z.number({ error: 'must be a number of ms' }).optional(),
  retry: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
  metadata: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
  preferredRole: z.string({ error: 'must be a string (an AgentRole)' }).optional(),
  waitForAgent: z.boolean({ error: 'must be true or false' }).optional(),
});

/** @throws HttpError 400 naming the field */
export function parseSubmitBody(body: unknown): TaskSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'INVALID_TASK', 'the body must be a JSON object with at least a type (a task spec)', 'task');
  }
  const parsed = check(submitSchema, body, 'INVALID_TASK');
  const priority = typeof parsed.priority === 'string' ? TaskPriority[parsed.priority] : parsed.priority;
  return { ...parsed, priority } as TaskSpec;
}

const cancelSchema = z.strictObject({
  reason: z.string({ error: 'must be a string' }).max(1000, { error: 'must be at most 1000 characters' }).optional(),
});

/** The optional body of `POST /api/tasks/:id/cancel`. @throws HttpError 400 */
export function parseCancelBody(body: unknown): { reason?: string } {
  if (body === undefined) return {};
  return check(cancelSchema, body, 'INVALID_ARGUMENT');
}

const STATUSES = Object.values(TaskStatus) as string[];

/** `status=running,queued`. @throws HttpError 400 */
export function parseStatuses(raw: string | undefined): TaskStatus[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  const statuses = raw.split(',').map((s) => s.trim());
  for (const status of statuses) {
    if (!STATUSES.includes(status)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `status must be one or more (comma-separated) of ${STATUSES.join(', ')} (received ${JSON.stringify(status.slice(0, 40))})`, 'status');
    }
  }
  return statuses as TaskStatus[];
}

function check<T>(schema: z.ZodType<T>, value: unknown, code: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path, issue.keys[0]].join('.');
    throw new HttpError(400, code, `${field} is not a known field (check its spelling)`, field);
  }
  const field = issue.path.map(String).join('.') || 'body';
  throw new HttpError(400, code, `${field} ${issue.message}`, field);
}
