/** Rows of the SQLite store's tables as the thread returns them, turned into the store's types. */
import type { SerializedError } from '../workers/protocol.js';
import type { AuditEvent, AuditEventType, DeadLetterRow, TaskRow } from './store.js';

export interface TaskRecordRow {
  id: string;
  type: string;
  priority: number;
  capabilities: string;
  payload: string | null;
  metadata: string;
  options: string;
  status: TaskRow['status'];
  attempt: number;
  agent_id: string | null;
  submitted_at: number;
  updated_at: number;
  result: string | null;
  error: string | null;
  owner: string | null;
}

/** An unfinished row as claimed: with its latest checkpoint. */
export interface ClaimedRecordRow extends TaskRecordRow {
  checkpoint: string | null;
  has_checkpoint: number;
}

export interface AuditRecordRow {
  seq: number;
  ts: number;
  type: AuditEventType;
  task_id: string | null;
  agent_id: string | null;
  attempt: number | null;
  details: string | null;
}

export interface DeadLetterRecordRow {
  task_id: string;
  row: string;
  error: string;
  code: string;
  attempts: number;
  failed_at: number;
}

/** JSON text as a value; SQL NULL is undefined. @throws SyntaxError for text that is not JSON */
export function parse(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

/** @throws SyntaxError when a JSON column cannot be read */
export function toTaskRow(r: TaskRecordRow): TaskRow {
  const row: TaskRow = {
    id: r.id,
    type: r.type,
    priority: r.priority,
    capabilities: JSON.parse(r.capabilities) as string[],
    payload: parse(r.payload),
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    options: JSON.parse(r.options) as Record<string, unknown>,
    status: r.status,
    attempt: r.attempt,
    agentId: r.agent_id,
    submittedAt: r.submitted_at,
    updatedAt: r.updated_at,
    error: r.error === null ? null : (JSON.parse(r.error) as SerializedError),
    owner: r.owner,
  };
  if (r.result !== null) row.result = JSON.parse(r.result);
  return row;
}

/** @throws SyntaxError when the details cannot be read */
export function toAuditEvent(r: AuditRecordRow): AuditEvent {
  return {
    seq: r.seq,
    timestamp: r.ts,
    type: r.type,
    taskId: r.task_id,
    agentId: r.agent_id,
    attempt: r.attempt,
    details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
  };
}

/** @throws SyntaxError when a JSON column cannot be read */
export function toDeadLetter(r: DeadLetterRecordRow): DeadLetterRow {
  return {
    taskId: r.task_id,
    row: JSON.parse(r.row) as TaskRow,
    error: JSON.parse(r.error) as SerializedError,
    code: r.code,
    attempts: r.attempts,
    failedAt: r.failed_at,
  };
}
