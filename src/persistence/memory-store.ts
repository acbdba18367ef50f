import type {
  AuditEvent,
  AuditEventType,
  AuditQuery,
  AuditRetention,
  AuditSubject,
  DeadLetterRow,
  PersistableTask,
  Store,
  TaskRow,
} from './store.js';

/** Dead letters kept by default; the oldest go first. */
export const MEMORY_DEAD_LETTER_LIMIT = 10_000;

const RESOLVED: Promise<void> = Promise.resolve();
const INITIAL_AUDIT_CAPACITY = 1024;

/**
 * The default store: nothing survives the process. The engine holds live tasks itself, so task
 * rows are not kept; checkpoints, dead letters and the audit trail live in memory, bounded.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  /** Dead letters dropped because more than `maxDeadLetters` were kept. */
  dropped = 0;

  readonly #retainMs: number;
  readonly #maxEvents: number;
  readonly #maxDeadLetters: number;
  readonly #checkpoints = new Map<string, unknown>();
  readonly #deadLetters = new Map<string, DeadLetterRow>();

  // The audit trail is a ring of parallel arrays (one slot per field, no object per event).
  // Entries are contiguous in seq, so an entry's seq is `#firstSeq` plus its distance from `#head`.
  #capacity = 0;
  #head = 0;
  #count = 0;
  #firstSeq = 1;
  #timestamps = new Float64Array(0);
  /** NaN stands for a null attempt. */
  #attempts = new Float64Array(0);
  #types: AuditEventType[] = [];
  #tasks: (AuditSubject | null)[] = [];
  #agentIds: (string | null)[] = [];
  #details: (Record<string, unknown> | null)[] = [];

  constructor(audit: AuditRetention, options: { maxDeadLetters?: number } = {}) {
    this.#retainMs = audit.retainMs;
    this.#maxEvents = audit.maxEvents;
    this.#maxDeadLetters = options.maxDeadLetters ?? MEMORY_DEAD_LETTER_LIMIT;
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

  unfinishedTasks(): TaskRow[] {
    return [];
  }

  pruneFinished(_before: number): number {
    return 0;
  }

  saveCheckpoint(taskId: string, state: unknown): Promise<void> {
    this.#checkpoints.set(taskId, state);
    return RESOLVED;
  }

  loadCheckpoint(taskId: string): unknown {
    return this.#checkpoints.get(taskId);
  }

  hasCheckpoint(taskId: string): boolean {
    return this.#checkpoints.has(taskId);
  }

  deleteCheckpoint(taskId: string): void {
    this.#checkpoints.delete(taskId);
  }

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
    // Timestamps come from Date.now() at each transition, so the oldest entries sit at the head.
    const cutoff = timestamp - this.#retainMs;
    while (this.#count > 0 && this.#timestamps[this.#head]! < cutoff) this.#dropOldest();
    let slot = this.#head + this.#count;
    if (slot >= this.#capacity) slot -= this.#capacity;
    this.#timestamps[slot] = timestamp;
    this.#attempts[slot] = attempt ?? NaN;
    this.#types[slot] = type;
    this.#tasks[slot] = task;
    this.#agentIds[slot] = agentId;
    this.#details[slot] = details;
    this.#count++;
  }

  history(taskId: string): AuditEvent[] {
    const cutoff = this.#expire();
    const out: AuditEvent[] = [];
    for (let i = 0; i < this.#count; i++) {
      const slot = this.#slot(i);
      if (this.#tasks[slot]?.id === taskId && this.#timestamps[slot]! >= cutoff) out.push(this.#event(i, slot));
    }
    return out;
  }

  audit(query: AuditQuery): AuditEvent[] {
    const cutoff = this.#expire();
    const limit = query.limit ?? 100;
    const type = query.type;
    const out: AuditEvent[] = [];
    for (let i = Math.max(0, (query.since ?? 0) - this.#firstSeq + 1); i < this.#count && out.length < limit; i++) {
      const slot = this.#slot(i);
      if ((type === undefined || this.#types[slot] === type) && this.#timestamps[slot]! >= cutoff) out.push(this.#event(i, slot));
    }
    return out;
  }

  putDeadLetter(entry: DeadLetterRow): void {
    if (!this.#deadLetters.has(entry.taskId) && this.#deadLetters.size >= this.#maxDeadLetters) {
      const oldest = this.#deadLetters.keys().next();
      if (!oldest.done) {
        this.#deadLetters.delete(oldest.value);
        this.dropped++;
      }
    }
    this.#deadLetters.set(entry.taskId, entry);
  }

  takeDeadLetter(taskId: string): DeadLetterRow | undefined {
    const entry = this.#deadLetters.get(taskId);
    this.#deadLetters.delete(taskId);
    return entry;
  }

  listDeadLetters(): DeadLetterRow[] {
    return [...this.#deadLetters.values()];
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
      taskId: this.#tasks[slot]?.id ?? null,
      agentId: this.#agentIds[slot]!,
      attempt: Number.isNaN(attempt) ? null : attempt,
      details: this.#details[slot]!,
    };
  }

  #dropOldest(): void {
    const head = this.#head;
    // Release references so dropped details can be collected.
    this.#details[head] = null;
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
    const types = new Array<AuditEventType>(capacity);
    const tasks = new Array<AuditSubject | null>(capacity);
    const agentIds = new Array<string | null>(capacity);
    const details = new Array<Record<string, unknown> | null>(capacity);
    for (let i = 0; i < this.#count; i++) {
      const slot = this.#slot(i);
      timestamps[i] = this.#timestamps[slot]!;
      attempts[i] = this.#attempts[slot]!;
      types[i] = this.#types[slot]!;
      tasks[i] = this.#tasks[slot]!;
      agentIds[i] = this.#agentIds[slot]!;
      details[i] = this.#details[slot]!;
    }
    this.#timestamps = timestamps;
    this.#attempts = attempts;
    this.#types = types;
    this.#tasks = tasks;
    this.#agentIds = agentIds;
    this.#details = details;
    this.#capacity = capacity;
    this.#head = 0;
  }
}
