import type {
  AuditEvent,
  AuditEventType,
  AuditQuery,
  AuditRetention,
  AuditSubject,
  DeadLetterRow,
  PersistableTask,
  Store,
  TaskListQuery,
  TaskRow,
  UnfinishedTask,
  UnreadableTask,
} from './store.js';

const RESOLVED: Promise<void> = Promise.resolve();
const INITIAL_AUDIT_CAPACITY = 1024;
const NO_SEQ = -1;

/**
 * The default store: nothing survives the process. The engine holds live tasks, checkpoints and
 * dead letters itself, so this store keeps only the audit trail, bounded: a ring of parallel
 * arrays holding what each entry says (a task is kept as its id, or the sequence its generated
 * id is made from), never the task itself, so results and payloads are not held by the trail.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly durable = false;

  readonly #retainMs: number;
  readonly #maxEvents: number;
  readonly #idOfSeq: (seq: number) => string;

  // Entries are contiguous in seq, so an entry's seq is `#firstSeq` plus its distance from `#head`.
  #capacity = 0;
  #head = 0;
  #count = 0;
  #firstSeq = 1;
  #timestamps = new Float64Array(0);
  /** NaN stands for a null attempt. */
  #attempts = new Float64Array(0);
  /** The task's generated-id sequence, or NO_SEQ when `#taskIds` holds its id (or it has none). */
  #taskSeqs = new Float64Array(0);
  #types: AuditEventType[] = [];
  #taskIds: (string | null)[] = [];
  #agentIds: (string | null)[] = [];
  #details: (Record<string, unknown> | null)[] = [];

  /** `idOfSeq`: the id of a task whose id was generated from its sequence. */
  constructor(audit: AuditRetention, idOfSeq: (seq: number) => string) {
    this.#retainMs = audit.retainMs;
    this.#maxEvents = audit.maxEvents;
    this.#idOfSeq = idOfSeq;
  }

  open(): Promise<void> {
    return RESOLVED;
  }

  close(): Promise<void> {
    return RESOLVED;
  }

  flush(): Promise<void> {
    return RESOLVED;
  }

  saveTask(_task: PersistableTask): void {}

  claimUnfinished(): Promise<{ tasks: UnfinishedTask[]; unreadable: UnreadableTask[] }> {
    return Promise.resolve({ tasks: [], unreadable: [] });
  }

  findTask(_taskId: string): Promise<TaskRow | undefined> {
    return Promise.resolve(undefined);
  }

  listTasks(_query: TaskListQuery): Promise<TaskRow[]> {
    return Promise.resolve([]);
  }

  saveCheckpoint(_taskId: string, _state: unknown): Promise<void> {
    return RESOLVED;
  }

  deleteCheckpoint(_taskId: string): void {}

  appendAudit(
    type: AuditEventType,
    timestamp: number,
    task: AuditSubject | null,
    agentId: string | null,
    attempt: number | null,
    details: Record<string, unknown> | null,
  ): void {
    if (this.#maxEvents === 0) {
      this.#firstSeq++;
      return;
    }
    if (this.#count === this.#capacity) {
      if (this.#capacity < this.#maxEvents) this.#grow();
      else this.#dropOldest();
    }
    // Timestamps come from one monotonic clock, so the oldest entries sit at the head.
    const cutoff = timestamp - this.#retainMs;
    while (this.#count > 0 && this.#timestamps[this.#head]! < cutoff) this.#dropOldest();
    let slot = this.#head + this.#count;
    if (slot >= this.#capacity) slot -= this.#capacity;
    this.#timestamps[slot] = timestamp;
    this.#attempts[slot] = attempt ?? NaN;
    this.#types[slot] = type;
    const seq = task === null ? NO_SEQ : (task.generatedSeq ?? NO_SEQ);
    this.#taskSeqs[slot] = seq;
    this.#taskIds[slot] = task === null || seq !== NO_SEQ ? null : task.id;
    this.#agentIds[slot] = agentId;
    this.#details[slot] = details;
    this.#count++;
  }

  history(taskId: string): Promise<AuditEvent[]> {
    const cutoff = this.#expire();
    const out: AuditEvent[] = [];
    for (let i = 0; i < this.#count; i++) {
      const slot = this.#slot(i);
      if (this.#timestamps[slot]! >= cutoff && this.#taskIdAt(slot) === taskId) out.push(this.#event(i, slot));
    }
    return Promise.resolve(out);
  }

  audit(query: AuditQuery): Promise<AuditEvent[]> {
    const cutoff = this.#expire();
    const limit = query.limit ?? 100;
    const type = query.type;
    const out: AuditEvent[] = [];
    for (let i = Math.max(0, (query.since ?? 0) - this.#firstSeq + 1); i < this.#count && out.length < limit; i++) {
      const slot = this.#slot(i);
      if ((type === undefined || this.#types[slot] === type) && this.#timestamps[slot]! >= cutoff) out.push(this.#event(i, slot));
    }
    return Promise.resolve(out);
  }

  putDeadLetter(_entry: DeadLetterRow): void {}

  deleteDeadLetter(_taskId: string): void {}

  listDeadLetters(): Promise<DeadLetterRow[]> {
    return Promise.resolve([]);
  }

  #taskIdAt(slot: number): string | null {
    const seq = this.#taskSeqs[slot]!;
    return seq === NO_SEQ ? this.#taskIds[slot]! : this.#idOfSeq(seq);
  }

  #slot(index: number): number {
    const slot = this.#head + index;
    return slot >= this.#capacity ? slot - this.#capacity : slot;
  }

  #event(index: number, slot: number): AuditEvent {
    const attempt = this.#attempts[slot]!;
    return {
      seq: this.#firstSeq + index,
      timestamp: this.#timestamps[slot]!,
      type: this.#types[slot]!,
      taskId: this.#taskIdAt(slot),
      agentId: this.#agentIds[slot]!,
      attempt: Number.isNaN(attempt) ? null : attempt,
      details: this.#details[slot]!,
    };
  }

  #dropOldest(): void {
    const head = this.#head;
    // Release references so dropped ids and details can be collected.
    this.#details[head] = null;
    this.#taskIds[head] = null;
    this.#head = head + 1 === this.#capacity ? 0 : head + 1;
    this.#count--;
    this.#firstSeq++;
  }

  /**
   * Drops the expired head of the ring as of now (reads can come long after the last append) and
   * returns the cutoff, which reads also apply to entries left behind a clock step back.
   */
  #expire(): number {
    const cutoff = Date.now() - this.#retainMs;
    while (this.#count > 0 && this.#timestamps[this.#head]! < cutoff) this.#dropOldest();
    return cutoff;
  }

  /** Doubles the ring (up to maxEvents), laying entries out from slot 0. */
  #grow(): void {
    const capacity = Math.min(this.#maxEvents, Math.max(INITIAL_AUDIT_CAPACITY, this.#capacity * 2));
    const timestamps = new Float64Array(capacity);
    const attempts = new Float64Array(capacity);
    const taskSeqs = new Float64Array(capacity);
    const types = new Array<AuditEventType>(capacity);
    const taskIds = new Array<string | null>(capacity);
    const agentIds = new Array<string | null>(capacity);
    const details = new Array<Record<string, unknown> | null>(capacity);
    for (let i = 0; i < this.#count; i++) {
      const slot = this.#slot(i);
      timestamps[i] = this.#timestamps[slot]!;
      attempts[i] = this.#attempts[slot]!;
      taskSeqs[i] = this.#taskSeqs[slot]!;
      types[i] = this.#types[slot]!;
      taskIds[i] = this.#taskIds[slot]!;
      agentIds[i] = this.#agentIds[slot]!;
      details[i] = this.#details[slot]!;
    }
    this.#timestamps = timestamps;
    this.#attempts = attempts;
    this.#taskSeqs = taskSeqs;
    this.#types = types;
    this.#taskIds = taskIds;
    this.#agentIds = agentIds;
    this.#details = details;
    this.#capacity = capacity;
    this.#head = 0;
  }
}
