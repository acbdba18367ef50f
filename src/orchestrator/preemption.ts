import type { TaskRecord, TaskRun } from './task-record.js';

/** What the preemptor reads and acts through. */
export interface PreemptionParts {
  /** The most urgent waiting task of each lane. */
  waitingHeads(): Iterable<TaskRecord>;
  /** True when some agent could start a task of this lane now. */
  canServe(head: TaskRecord): boolean;
  /** Runs in progress. */
  runs(): Iterable<TaskRun>;
  /** Running tasks that are preemptible (0: nothing to look for). */
  readonly preemptibleRunning: number;
  preempt(run: TaskRun, by: TaskRecord, graceMs: number): void;
}

export interface PreemptionOptions {
  minGap: number;
  graceMs: number;
  maxPerTask: number;
}

/**
 * Priority preemption: when a task waits that no capable agent has room for, and a capable agent
 * runs a preemptible task at least `minGap` levels less urgent, the least urgent such run (the
 * most recently started among equals) gives its slot up. Bounded churn: a waiting task preempts
 * at most one run at a time, a task preempted `maxPerTask` times without checkpointing in between
 * is not preempted again until it checkpoints (it would lose the same work again), and the gap
 * keeps neighbouring levels from trading slots.
 */
export class Preemptor {
  /** Waiting tasks that preempted a run whose slot is not free yet. */
  readonly #waiting = new Set<TaskRecord>();

  constructor(
    readonly options: PreemptionOptions,
    readonly parts: PreemptionParts,
  ) {}

  /** Called when dispatch has started all it could while tasks still wait. */
  check(): void {
    const parts = this.parts;
    if (parts.preemptibleRunning === 0) {
      this.#waiting.clear();
      return;
    }
    // A task that preempted and has started (or left the queue) no longer holds a claim on a slot.
    for (const record of this.#waiting) if (!record.inQueue) this.#waiting.delete(record);
    const { minGap, maxPerTask, graceMs } = this.options;
    const heads = [...parts.waitingHeads()].sort((a, b) => a.level - b.level || a.seq - b.seq);
    for (const head of heads) {
      if (this.#waiting.has(head) || parts.canServe(head)) continue;
      const victim = this.#victim(head, minGap, maxPerTask);
      if (victim === null) continue;
      this.#waiting.add(head);
      parts.preempt(victim, head, graceMs);
    }
  }

  /** The least urgent preemptible run on an agent able to take `head`, most recently started first. */
  #victim(head: TaskRecord, minGap: number, maxPerTask: number): TaskRun | null {
    const agents = head.lane.key.agents;
    let best: TaskRun | null = null;
    for (const run of this.parts.runs()) {
      if (run.finished || run.preemptedBy !== null) continue;
      const record = run.record;
      if (!record.preemptible || record.preemptionsSinceCheckpoint >= maxPerTask || record.priority < head.level + minGap) continue;
      // Aging lifts a task over less urgent work only: never over a run of its own priority (tasks of one level would churn) or a more urgent one.
      if (record.priority <= head.priority) continue;
      // An agent that is not admitting (rate limit spent, circuit open) could not start `head` in the freed slot.
      if (!run.agent.admitting || !agents.includes(run.agent)) continue;
      if (best === null || record.priority > best.record.priority || (record.priority === best.record.priority && run.startedAt > best.startedAt)) best = run;
    }
    return best;
  }
}
