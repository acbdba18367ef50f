import { fits, type Message, type PostgresWorkSource } from '../distributed/index.js';
import { StoreError } from '../errors.js';
import type { DeltaEvent, UpdateEvent } from '../types.js';
import type { TransitionSink } from './task-lifecycle.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/** The most a notification carries; larger progress states go through the progress table. */
const NOTIFY_LIMIT = 7_900;

/**
 * Tells the nodes that watch a task this node runs (its submitter, observers elsewhere) how it
 * starts and streams. Outcomes and retries are told by the work source once they are committed.
 */
export class ClusterRelay implements TransitionSink {
  constructor(
    readonly source: PostgresWorkSource<TaskRecord>,
    readonly nodeId: string,
    readonly reportError: (error: StoreError) => void,
  ) {}

  started(record: TaskRecord, run: TaskRun): void {
    const watchers = this.source.watchersOf(record);
    if (watchers === null) return;
    const message: Message = { k: 's', i: record.id, a: run.agent.agentId, w: run.worker.workerId, n: this.nodeId, t: run.attempt };
    for (const node of watchers) this.source.publish(node, message);
  }

  /** A progress update of a task running here. */
  progress(record: TaskRecord, event: DeltaEvent | UpdateEvent): void {
    const watchers = this.source.watchersOf(record);
    if (watchers === null) return;
    const base = { k: 'p' as const, i: record.id, q: event.metadata.sequence, a: event.metadata.agentId, ts: event.timestamp };
    const message: Message = event.type === 'delta' && event.metadata.sequence > 1 ? { ...base, d: event.delta } : { ...base, s: event.data };
    this.#send(record, watchers, message);
  }

  /** A node that watches a running task needs its state: the start and a snapshot. */
  resync(record: TaskRecord, node: string): void {
    const run = record.run;
    if (run === null) return;
    this.source.publish(node, { k: 's', i: record.id, a: run.agent.agentId, w: run.worker.workerId, n: this.nodeId, t: run.attempt });
    const stream = record.stream;
    if (stream === null || stream.sequence === 0) return;
    this.#send(record, [node], { k: 'p', i: record.id, q: stream.sequence, a: run.agent.agentId, ts: Date.now(), s: stream.currentState() });
  }

  #send(record: TaskRecord, nodes: Iterable<string>, message: Message & { k: 'p' }): void {
    if (fits(message, NOTIFY_LIMIT)) {
      for (const node of nodes) this.source.publish(node, message);
      return;
    }
    // Too large for a notification: the whole state goes to the progress table, a reference goes out.
    const targets = [...nodes];
    const state = message.s !== undefined ? message.s : record.stream?.currentState();
    void this.source.storeProgress(record.id, message.q, JSON.stringify(state ?? null)).then(
      () => {
        for (const node of targets) this.source.publish(node, { k: 'p', i: message.i, q: message.q, a: message.a, ts: message.ts, r: 1 });
      },
      (error: unknown) => this.reportError(new StoreError('progress', `of task ${record.id} could not be stored for other nodes: ${(error as Error).message}`, { cause: error })),
    );
  }

  submitted(): void {}
  recovered(): void {}
  completed(): void {}
  attemptFailed(): void {}
  retrying(): void {}
  requeued(): void {}
  failed(): void {}
  cancelled(): void {}

  /** The task stays this node's, queued again: its watchers see the preemption, as its events here do. */
  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    const watchers = this.source.watchersOf(record);
    if (watchers === null) return;
    const message: Message = { k: 'v', i: record.id, t: record.attempt, b: by.id, a: run.agent.agentId, c: record.preemptions };
    for (const node of watchers) this.source.publish(node, message);
  }
}
