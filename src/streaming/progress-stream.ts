import jsonPatch from 'fast-json-patch';
import type { DeltaEvent, JsonPatchOperation, ProgressEvent, SnapshotEvent, UpdateEvent } from '../types.js';
import { cloneJson, isContainer } from './json.js';

const { applyOperation, applyPatch, compare } = jsonPatch;
const UNSAFE_PATH = /\/(__proto__|constructor\/prototype)(\/|$)/;

/**
 * The progress of one task: turns each `ctx.progress(state)` into a sequenced `delta` (or
 * `update`) event, takes a snapshot every `interval` updates, and holds what a late subscriber
 * needs to rebuild the state: the latest snapshot and the updates after it (fewer than
 * `interval`), so memory per task stays bounded however long it streams.
 */
export class ProgressStream {
  sequence = 0;
  /** The latest snapshot, taken every `interval` updates. */
  snapshot: SnapshotEvent | null = null;
  /** Updates after `snapshot` (from the first one while there is none). */
  readonly #since: (DeltaEvent | UpdateEvent)[] = [];
  /** Private JSON copy of the latest state: what the next delta is computed from. */
  #mirror: unknown = undefined;
  #agentId = '';

  constructor(
    readonly compression: boolean,
    readonly interval: number,
  ) {}

  /** Records a state; returns its event. `snapshot` is fresh when `sequence % interval === 0`. */
  update(state: unknown, agentId: string, timestamp: number): DeltaEvent | UpdateEvent {
    // What may throw first (a state JSON cannot carry): then the sequence stays gap-free.
    // Without compression the mirror is still a private copy: a snapshot shows the state as it was
    // sent, and a state JSON cannot carry fails here, in the handler's call.
    const delta = this.compression ? this.#diff(state) : null;
    const copy = delta === null ? cloneJson(state) : undefined;
    const sequence = this.sequence + 1;
    // (Without compression the copy is never changed later, so the snapshot may share it.)
    const snapshotData = sequence % this.interval === 0 ? (delta === null ? copy : cloneJson(this.#mirror)) : undefined;
    this.sequence = sequence;
    this.#agentId = agentId;
    const metadata = { sequence, agentId };
    let event: DeltaEvent | UpdateEvent;
    if (delta !== null) {
      event = { type: 'delta', timestamp, data: state, delta, metadata };
    } else {
      this.#mirror = copy;
      event = { type: 'update', timestamp, data: state, metadata };
    }
    if (sequence % this.interval === 0) {
      this.snapshot = { type: 'snapshot', timestamp, data: snapshotData, metadata: { sequence, agentId } };
      this.#since.length = 0;
    } else {
      this.#since.push(event);
    }
    return event;
  }

  /**
   * An update made in another process: `delta` turns the state of `sequence - 1` into this one,
   * or `state` (a delta of null) replaces it. Returns its event, or null when updates in between
   * were missed (or it is older than what is held): the caller then asks for a fresh state.
   */
  applyRemote(sequence: number, agentId: string, timestamp: number, delta: JsonPatchOperation[] | null, state: unknown): DeltaEvent | UpdateEvent | null {
    if (delta !== null ? sequence !== this.sequence + 1 : sequence <= this.sequence) return null;
    if (delta !== null) {
      // Values copied: the delta is also handed to subscribers, and the mirror changes in place later.
      const copies = delta.map((operation) => ('value' in operation && isContainer(operation.value) ? { ...operation, value: cloneJson(operation.value) } : operation));
      this.#mirror = applyPatch(this.#mirror, copies, false, true).newDocument;
    } else {
      this.#mirror = cloneJson(state);
    }
    this.sequence = sequence;
    this.#agentId = agentId;
    const data = cloneJson(this.#mirror);
    const metadata = { sequence, agentId };
    const event: DeltaEvent | UpdateEvent = this.compression
      ? { type: 'delta', timestamp, data, delta: delta ?? [{ op: 'replace', path: '', value: cloneJson(this.#mirror) }], metadata }
      : { type: 'update', timestamp, data, metadata };
    if (sequence % this.interval === 0 || delta === null) {
      this.snapshot = this.takeSnapshot(timestamp);
      this.#since.length = 0;
    } else {
      this.#since.push(event);
    }
    return event;
  }

  /** A JSON copy of the latest state. */
  currentState(): unknown {
    return cloneJson(this.#mirror);
  }

  /** A snapshot of the current state (a copy), at the current sequence. */
  takeSnapshot(timestamp: number): SnapshotEvent {
    return { type: 'snapshot', timestamp, data: cloneJson(this.#mirror), metadata: { sequence: this.sequence, agentId: this.#agentId } };
  }

  /**
   * What a subscriber starting at `fromSequence` receives first: the latest snapshot (at or
   * before that point when held, else the oldest state held) and every update after it.
   */
  replay(fromSequence: number = this.sequence): ProgressEvent[] {
    if (this.sequence === 0 || fromSequence > this.sequence) return [];
    return this.snapshot === null ? [...this.#since] : [this.snapshot, ...this.#since];
  }

  /** The patch from the previous state to `state`; the mirror becomes a copy of `state`. */
  #diff(state: unknown): JsonPatchOperation[] {
    const mirror = this.#mirror;
    if (this.sequence === 0 || !isContainer(mirror) || !isContainer(state) || Array.isArray(mirror) !== Array.isArray(state)) {
      return this.#replaceAll(state);
    }
    const patch = compare(mirror, state);
    // Paths through __proto__ or constructor/prototype are refused by patch libraries (prototype
    // pollution guards), so such a change goes as a whole-document replace.
    if (patch.some((operation) => UNSAFE_PATH.test(operation.path))) return this.#replaceAll(state);
    // The patch's values go to subscribers; the mirror gets its own copies, so that later
    // in-place updates of the mirror never change a delta already sent or held for replay.
    for (const operation of patch) {
      applyOperation(mirror, 'value' in operation && isContainer(operation.value) ? { ...operation, value: cloneJson(operation.value) } : operation, false, true);
    }
    return patch;
  }

  #replaceAll(state: unknown): JsonPatchOperation[] {
    this.#mirror = cloneJson(state);
    return [{ op: 'replace', path: '', value: cloneJson(state) }];
  }
}
