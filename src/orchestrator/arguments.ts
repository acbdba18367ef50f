import { z } from 'zod';
import { TaskStatus } from '../enums.js';
import { InvalidArgumentError } from '../errors.js';
import { AUDIT_EVENT_TYPES, type AuditQuery, type TaskListQuery } from '../persistence/store.js';
import { count, ms } from '../util/schema.js';
import { describeIssue } from '../util/validation.js';

const STATUSES = Object.values(TaskStatus) as [TaskStatus, ...TaskStatus[]];
const MAX_PAGE = 10_000;

const shutdownSchema = z.strictObject({
  graceful: z.boolean({ error: 'must be true or false' }).optional(),
  timeout: ms('longest graceful wait').optional(),
});

const auditQuerySchema = z.strictObject({
  since: count(0).optional(),
  limit: count(1).max(MAX_PAGE, { error: `must be at most ${MAX_PAGE}` }).optional(),
  type: z.enum(AUDIT_EVENT_TYPES, { error: `must be one of ${AUDIT_EVENT_TYPES.join(', ')}` }).optional(),
});

const statusSchema = z.enum(STATUSES, { error: `must be one of ${STATUSES.join(', ')}` });
const taskQuerySchema = z.strictObject({
  status: z.union([statusSchema, z.array(statusSchema)], { error: `must be a TaskStatus or an array of them (${STATUSES.join(', ')})` }).optional(),
  type: z.string({ error: 'must be a string' }).optional(),
  limit: count(1).max(MAX_PAGE, { error: `must be at most ${MAX_PAGE}` }).optional(),
});

const startSchema = z.strictObject({
  recover: z.boolean({ error: 'must be true or false' }).optional(),
});

const requeueSchema = z.strictObject({
  waitForAgent: z.boolean({ error: 'must be true or false' }).optional(),
});

const signalSchema = z.instanceof(AbortSignal, { error: 'must be an AbortSignal' });
const submitSchema = z.strictObject({ signal: signalSchema.optional() });
const streamSchema = z.strictObject({
  fromSequence: count(0).optional(),
  signal: signalSchema.optional(),
});

const subscribeSchema = z.strictObject({
  fromSequence: count(0).optional(),
  bufferSize: count(1).optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(name, 'must be an object');
  const checked = schema.safeParse(value);
  if (checked.success) return checked.data;
  const { field, detail } = describeIssue(checked.error, value, name);
  throw new InvalidArgumentError(field, detail);
}

/** @throws InvalidArgumentError naming the option */
export function parseShutdownOptions(value: unknown): { graceful: boolean; timeout: number } {
  const options = parse(shutdownSchema, value, 'shutdown');
  return { graceful: options.graceful ?? true, timeout: options.timeout ?? 30_000 };
}

/** @throws InvalidArgumentError naming the field */
export function parseAuditQuery(value: unknown): AuditQuery {
  return parse(auditQuerySchema, value, 'query') as AuditQuery;
}

/** @throws InvalidArgumentError naming the field */
export function parseTaskQuery(value: unknown): TaskListQuery {
  const query = parse(taskQuerySchema, value, 'query');
  const status = query.status === undefined ? undefined : Array.isArray(query.status) ? query.status : [query.status as TaskStatus];
  return { status, type: query.type, limit: query.limit ?? 100 };
}

/** @throws InvalidArgumentError when `value` is not a non-empty string */
export function requireId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidArgumentError(field, `must be a non-empty string (received ${typeof value === 'string' ? '""' : String(value)})`);
  return value;
}

/** @throws InvalidArgumentError naming the option */
export function parseStartOptions(value: unknown): { recover: boolean } {
  return { recover: parse(startSchema, value, 'start').recover ?? true };
}

/** @throws InvalidArgumentError naming the option */
export function parseRequeueOptions(value: unknown): { waitForAgent: boolean } {
  return { waitForAgent: parse(requeueSchema, value, 'requeue').waitForAgent ?? false };
}

/** @throws InvalidArgumentError naming the option */
export function parseSubmitOptions(value: unknown): { signal?: AbortSignal } {
  return parse(submitSchema, value, 'options');
}

/** @throws InvalidArgumentError naming the option */
export function parseStreamOptions(value: unknown): { fromSequence?: number; signal?: AbortSignal } {
  return parse(streamSchema, value, 'options');
}

/** @throws InvalidArgumentError when `value` is not a function */
export function requireFunction(value: unknown, field: string): void {
  if (typeof value !== 'function') throw new InvalidArgumentError(field, `must be a function (received ${value === null ? 'null' : typeof value})`);
}

/** @throws InvalidArgumentError naming the option */
export function parseSubscribeOptions(value: unknown): { fromSequence?: number; bufferSize?: number } {
  return parse(subscribeSchema, value, 'options');
}
