/**
 * The SQLite store's queued writes, and their encoding into batches for the writer thread: JSON
 * is made here, rows are split per statement, and audit entries are packed into chunks.
 *
 * What can no longer change is encoded as soon as it is queued, so that it holds nothing alive
 * and can be posted early: the row of a task in a final status (no later transition rewrites
 * it) and a full chunk of audit entries. The row of an unfinished task is taken when the batch
 * is made, so several transitions within one batch cost one row.
 */
import { AUDIT_FIELDS, DELETED_CHECKPOINT, ROWS_PER_STATEMENT, TASK_COLUMNS, UPDATE_COLUMNS, type Batch } from './sqlite-protocol.js';
import { AUDIT_CHUNK_ENTRIES, AUDIT_TYPES } from './sqlite-schema.js';
import type { AuditEventType, AuditSubject, DeadLetterRow, PersistableTask } from './store.js';

/** Marks a queued delete in the pending maps. */
const DELETE = Symbol('delete');

const TYPE_BITS = Object.fromEntries(AUDIT_TYPES.map((type, i) => [type, 2 ** i])) as Record<AuditEventType, number>;
const CHUNK_VALUES = AUDIT_CHUNK_ENTRIES * AUDIT_FIELDS;
const CHUNK_WEIGHT = 64;
const FINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'timeout']);

/** True for `{}` (most tasks' options): its JSON needs no call. */
function isEmpty(object: Record<string, unknown>): boolean {
  for (const _ in object) return false;
  return true;
}

function isFinal(task: PersistableTask): boolean {
  return task.status !== undefined && FINAL_STATUSES.has(task.status);
}

/** `JSON.stringify`, with undefined (and other values JSON has no text for) as SQL NULL. */
export function json(value: unknown): string | null {
  return JSON.stringify(value) ?? null;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function emptyBatch(): Batch {
  return { tasks: [], updates: [], checkpoints: [], deadLetters: [], chunks: [] };
}

/** The array to push the next row into: the last one, or a new one once it holds `ROWS_PER_STATEMENT` rows. */
function rowsFor(lists: unknown[][], width: number): unknown[] {
  const last = lists.at(-1);
  if (last !== undefined && last.length < width * ROWS_PER_STATEMENT) return last;
  const next: unknown[] = [];
  lists.push(next);
  return next;
}

export class PendingWrites {
  /** Unfinished tasks whose row is taken when the batch is made. Keyed by the task object: no id string is built. */
  readonly #tasks = new Set<PersistableTask>();
  /** Tasks whose full row went out: later batches carry only what changes. */
  readonly #written = new WeakSet<PersistableTask>();
  /** JSON of the state (null for undefined), or DELETE. */
  readonly #checkpoints = new Map<string, string | null | typeof DELETE>();
  readonly #deadLetters = new Map<string, DeadLetterRow | typeof DELETE>();
  /**
   * Audit entries of the chunk being filled, AUDIT_FIELDS values each (the subject and details as
   * given). A timestamp is kept as ms after the chunk's first: a small integer, which costs no
   * allocation here and little to write as JSON.
   */
  #entries: unknown[] = [];
  #firstTs = 0;
  #lastTs = 0;
  #types = 0;
  /** Writes already encoded: final rows, full chunks. */
  #encoded: Batch = emptyBatch();
  /** How much is in `#encoded` (see encodedCount). */
  #encodedCount = 0;
  /** What JSON could not encode, described; taken with the next batch. */
  #skipped: string[] = [];
  /** The tasks of the chunk being encoded, with their ids (made once per chunk: a task's entries often share one). */
  readonly #chunkIds = new Map<AuditSubject, string>();
  // Most tasks share their capabilities array and metadata object (a lane's, the default): their JSON is made once.
  #capabilities: readonly string[] | null = null;
  #capabilitiesJson = '';
  #metadata: Record<string, unknown> | null = null;
  #metadataJson = '';

  constructor(readonly nodeId: string) {}

  get empty(): boolean {
    return (
      this.#tasks.size === 0 &&
      this.#encodedCount === 0 &&
      this.#entries.length === 0 &&
      this.#checkpoints.size === 0 &&
      this.#deadLetters.size === 0
    );
  }

  /** How much is encoded and not yet taken: a row counts one, a chunk (a row and its tasks' index rows) CHUNK_WEIGHT. */
  get encodedCount(): number {
    return this.#encodedCount;
  }

  saveTask(task: PersistableTask): void {
    if (!isFinal(task)) {
      this.#tasks.add(task);
      return;
    }
    // Encoded now, and no longer held: a finished task is released as soon as the engine lets go.
    if (this.#tasks.size > 0) this.#tasks.delete(task);
    this.#encodeTask(task);
  }

  /** `state`: its JSON, made by the caller (null for undefined). */
  saveCheckpoint(taskId: string, state: string | null): void {
    this.#checkpoints.set(taskId, state);
  }

  deleteCheckpoint(taskId: string): void {
    this.#checkpoints.set(taskId, DELETE);
  }

  putDeadLetter(entry: DeadLetterRow): void {
    this.#deadLetters.set(entry.taskId, entry);
  }

  deleteDeadLetter(taskId: string): void {
    this.#deadLetters.set(taskId, DELETE);
  }

  appendAudit(
    timestamp: number,
    type: AuditEventType,
    task: AuditSubject | null,
    agentId: string | null,
    attempt: number | null,
    details: Record<string, unknown> | null,
  ): void {
    const entries = this.#entries;
    if (entries.length === 0) this.#firstTs = this.#lastTs = timestamp;
    else if (timestamp > this.#lastTs) this.#lastTs = timestamp;
    this.#types |= TYPE_BITS[type];
    entries.push(timestamp - this.#firstTs, type, task, agentId, attempt, details);
    if (entries.length === CHUNK_VALUES) this.#encodeChunk();
  }

  /** Every queued write as a batch (null when there are none), with what JSON could not encode described in `skipped`. */
  take(skipped: string[]): Batch | null {
    // A task that ended without being saved so (cancelled by a forced shutdown, its row left unfinished) is not written.
    for (const task of this.#tasks) if (!isFinal(task)) this.#encodeTask(task);
    this.#tasks.clear();
    if (this.#entries.length > 0) this.#encodeChunk();
    const batch = this.#encoded;
    for (const [taskId, state] of this.#checkpoints) batch.checkpoints.push(taskId, state === DELETE ? DELETED_CHECKPOINT : state);
    this.#checkpoints.clear();
    for (const [taskId, entry] of this.#deadLetters) {
      try {
        batch.deadLetters.push(taskId, entry === DELETE ? null : [JSON.stringify(entry.row), JSON.stringify(entry.error), entry.code, entry.attempts, entry.failedAt]);
      } catch (cause) {
        this.#skipped.push(`dead letter ${taskId}: ${messageOf(cause)}`);
      }
    }
    this.#deadLetters.clear();
    return this.#takeEncoded(skipped, batch.checkpoints.length > 0 || batch.deadLetters.length > 0);
  }

  /** The writes encoded so far (final rows, full chunks) as a batch, leaving the rest queued; null when there are none. */
  takeEncoded(skipped: string[]): Batch | null {
    return this.#takeEncoded(skipped, false);
  }

  #takeEncoded(skipped: string[], more: boolean): Batch | null {
    for (const description of this.#skipped) skipped.push(description);
    this.#skipped = [];
    if (this.#encodedCount === 0 && !more) return null;
    const batch = this.#encoded;
    this.#encoded = emptyBatch();
    this.#encodedCount = 0;
    return batch;
  }

  #encodeTask(task: PersistableTask): void {
    const batch = this.#encoded;
    try {
      const row = task.toRow();
      const result = row.resultJson ?? json(row.result);
      const error = row.error == null ? null : JSON.stringify(row.error);
      if (this.#written.has(task)) {
        rowsFor(batch.updates, UPDATE_COLUMNS.length + 1).push(row.id, row.status, row.attempt, row.agentId, row.updatedAt, result, error, this.nodeId);
      } else {
        if (row.capabilities !== this.#capabilities) {
          this.#capabilitiesJson = JSON.stringify(row.capabilities);
          this.#capabilities = row.capabilities;
        }
        if (row.metadata !== this.#metadata) {
          this.#metadataJson = JSON.stringify(row.metadata);
          this.#metadata = row.metadata;
        }
        const payload = row.payloadJson !== undefined ? row.payloadJson : json(row.payload);
        const options = isEmpty(row.options) ? '{}' : JSON.stringify(row.options);
        rowsFor(batch.tasks, TASK_COLUMNS.length).push(
          row.id, row.type, row.priority, this.#capabilitiesJson, payload, this.#metadataJson, options,
          row.status, row.attempt, row.agentId, row.submittedAt, row.updatedAt, result, error, this.nodeId,
        );
        this.#written.add(task);
      }
      this.#encodedCount++;
    } catch (cause) {
      this.#skipped.push(`task ${task.id}: ${messageOf(cause)}`);
    }
  }

  /** Packs the entries of the chunk being filled: subjects become ids, the entries one JSON array; types are noted. */
  #encodeChunk(): void {
    let entries = this.#entries;
    this.#entries = [];
    const types = this.#types;
    this.#types = 0;
    const ids = this.#chunkIds;
    for (let i = 0; i < entries.length; i += AUDIT_FIELDS) {
      const task = entries[i + 2] as AuditSubject | null;
      if (task === null) continue;
      let id = ids.get(task);
      if (id === undefined) ids.set(task, (id = task.id));
      entries[i + 2] = id;
    }
    // (Two subjects may name one task: a dead letter's is made from its id.)
    const tasks = [...new Set(ids.values())];
    ids.clear();
    let text: string;
    try {
      text = JSON.stringify(entries);
    } catch {
      entries = withoutUnencodable(entries, this.#skipped);
      if (entries.length === 0) return;
      text = JSON.stringify(entries);
    }
    this.#encoded.chunks.push(entries.length / AUDIT_FIELDS, this.#firstTs, this.#lastTs, types, tasks, text);
    this.#encodedCount += CHUNK_WEIGHT;
  }
}

/** The entries whose details JSON can encode; the others are described in `skipped`. */
function withoutUnencodable(entries: unknown[], skipped: string[]): unknown[] {
  const kept: unknown[] = [];
  for (let i = 0; i < entries.length; i += AUDIT_FIELDS) {
    try {
      JSON.stringify(entries[i + 5]);
    } catch (cause) {
      skipped.push(`audit ${String(entries[i + 1])} of ${String(entries[i + 2] ?? entries[i + 3] ?? '-')}: ${messageOf(cause)}`);
      continue;
    }
    for (let f = 0; f < AUDIT_FIELDS; f++) kept.push(entries[i + f]);
  }
  return kept;
}
