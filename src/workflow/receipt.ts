import { createHash } from 'node:crypto';
import { isRecord } from './util.js';

/** What an entry of a receipt records. */
export type ReceiptEntryKind = 'workflow' | 'package' | 'stage' | 'compensation' | 'decision';

/** One entry of a receipt. `hash` covers every other field, `previousHash` included: the chain. */
export interface ReceiptEntry {
  /** Position in the receipt, from 0. */
  index: number;
  kind: ReceiptEntryKind;
  stage: string | null;
  package: string | null;
  /** The outcome: `completed`, `failed`, `skipped`, `dry-run`, `compensated`, `allow`, … */
  status: string;
  /** Epoch ms when it was recorded. */
  at: number;
  /** ms the stage or package took, when it ran. */
  duration: number | null;
  /** JSON data: the error of a failure, the analysis in the first entry. */
  detail: unknown;
  /** The previous entry's hash (64 zeros for the first). */
  previousHash: string;
  /** SHA-256 (hex) of the canonical JSON of the workflow id and every field above. */
  hash: string;
}

/** An audit record of a package workflow: every stage and package outcome, hash-chained. */
export interface Receipt {
  workflowId: string;
  algorithm: 'sha256';
  entries: ReceiptEntry[];
  /** The last entry's hash: keep it apart (or sign it) to detect a receipt rewritten as a whole. */
  hash: string;
}

/** What `verifyReceipt` says. */
export type ReceiptVerification = { valid: true; entries: number } | { valid: false; index: number; reason: string };

const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every level, so that equal data hashes equally. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

function hashOf(workflowId: string, entry: Omit<ReceiptEntry, 'hash'>): string {
  const { index, kind, stage, package: pkg, status, at, duration, detail, previousHash } = entry;
  return createHash('sha256').update(canonicalJson({ workflowId, index, kind, stage, package: pkg, status, at, duration, detail, previousHash })).digest('hex');
}

/** Builds a receipt entry by entry. */
export class ReceiptBuilder {
  readonly #workflowId: string;
  readonly #entries: ReceiptEntry[] = [];

  constructor(workflowId: string) {
    this.#workflowId = workflowId;
  }

  add(kind: ReceiptEntryKind, stage: string | null, pkg: string | null, status: string, duration: number | null, detail: unknown = null): void {
    const previousHash = this.#entries.at(-1)?.hash ?? GENESIS_HASH;
    // A JSON copy: the receipt holds data, never live objects.
    const entry = { index: this.#entries.length, kind, stage, package: pkg, status, at: Date.now(), duration, detail: JSON.parse(canonicalJson(detail)) as unknown, previousHash };
    this.#entries.push({ ...entry, hash: hashOf(this.#workflowId, entry) });
  }

  build(): Receipt {
    return { workflowId: this.#workflowId, algorithm: 'sha256', entries: this.#entries, hash: this.#entries.at(-1)?.hash ?? GENESIS_HASH };
  }
}

/**
 * Checks a receipt's hash chain: every entry's hash matches its content and the previous
 * entry's hash, and the receipt's `hash` is the last one's. A changed, removed, inserted or
 * reordered entry is found (its index and why). A receipt rewritten as a whole (every hash
 * recomputed) can only be caught against a `hash` kept elsewhere: compare `receipt.hash` with it.
 */
export function verifyReceipt(receipt: Receipt): ReceiptVerification {
  if (!isRecord(receipt) || !Array.isArray(receipt.entries) || typeof receipt.workflowId !== 'string') {
    return { valid: false, index: -1, reason: 'not a receipt (workflowId and entries expected)' };
  }
  if (receipt.entries.length === 0) return { valid: false, index: -1, reason: 'the receipt has no entries' };
  let previous = GENESIS_HASH;
  for (let i = 0; i < receipt.entries.length; i++) {
    const entry = receipt.entries[i] as unknown;
    if (!isRecord(entry)) return { valid: false, index: i, reason: 'the entry is not an object' };
    if (entry.index !== i) return { valid: false, index: i, reason: `the entry says it is entry ${String(entry.index)}: entries were removed, inserted or reordered` };
    if (entry.previousHash !== previous) return { valid: false, index: i, reason: "its previousHash is not the previous entry's hash" };
    const expected = hashOf(receipt.workflowId, entry as unknown as ReceiptEntry);
    if (entry.hash !== expected) return { valid: false, index: i, reason: 'its content does not match its hash: the entry was modified' };
    previous = expected;
  }
  if (receipt.hash !== previous) return { valid: false, index: receipt.entries.length - 1, reason: "the receipt's hash is not its last entry's: entries were removed from the end" };
  return { valid: true, entries: receipt.entries.length };
}
