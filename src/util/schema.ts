import { z } from 'zod';

/** A duration option: a finite number of ms ≥ 0. */
export const ms = (what: string) => z.number({ error: `must be a number of ms (${what})` }).finite().min(0, { error: 'must be ≥ 0' });

/** An integer option ≥ `min`. */
export const count = (min: number) => z.int({ error: 'must be an integer' }).min(min, { error: `must be an integer ≥ ${min}` });
