// What only the memory store does: its audit trail is a bounded ring of what each entry says.
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../dist/persistence/index.js';
import { append, event } from './store-spec.js';

const idOfSeq = (seq: number): string => `gen-${seq}`;

describe('MemoryStore', () => {
  it('keeps its ring in seq order as it grows, wraps and expires', async () => {
    const store = new MemoryStore({ retainMs: 3_600_000, maxEvents: 3000 }, idOfSeq);
    for (let i = 0; i < 5000; i++) append(store, event('submitted', `t${i}`, { attempt: i }));
    const all = await store.audit({ limit: 10_000 });
    expect(all).toHaveLength(3000);
    expect(all[0]).toMatchObject({ seq: 2001, taskId: 't2000', attempt: 2000 });
    expect(all[2999]).toMatchObject({ seq: 5000, taskId: 't4999', attempt: 4999 });
    expect((await store.audit({ since: 4997 })).map((e) => e.seq)).toEqual([4998, 4999, 5000]);

    const none = new MemoryStore({ retainMs: 3_600_000, maxEvents: 0 }, idOfSeq);
    append(none, event('submitted', 't'));
    expect(await none.audit({})).toEqual([]);
  });

  it('reads the id of a generated task from its sequence, and a chosen id as given', async () => {
    const store = new MemoryStore({ retainMs: 3_600_000, maxEvents: 100 }, idOfSeq);
    append(store, event('completed', null, { task: { id: 'gen-7', generatedSeq: 7 } }));
    append(store, event('completed', null, { task: { id: 'chosen', generatedSeq: -1 } }));
    append(store, event('completed', 'plain'));
    expect((await store.audit({})).map((e) => e.taskId)).toEqual(['gen-7', 'chosen', 'plain']);
    expect((await store.history('gen-7')).map((e) => e.type)).toEqual(['completed']);
  });
});
