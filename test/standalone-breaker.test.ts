// The standalone breaker exported from the index: createCircuitBreaker and withCircuitBreaker.
// Its open time is driven by an injected clock (standaloneBreaker, what createCircuitBreaker
// wraps), so no test waits for it; one test per wrapper lets the real timer half-open it.
import { afterEach, describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  CircuitState,
  InvalidOptionsError,
  createCircuitBreaker,
  isOrchestratorError,
  withCircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitTransition,
  type StandaloneCircuitBreaker,
} from '../src/index.js';
import { resolveBreakerOptions, standaloneBreaker } from '../src/resilience/circuit-breaker.js';

const breakers: StandaloneCircuitBreaker[] = [];

function breaker(options: Parameters<typeof createCircuitBreaker>[0]): StandaloneCircuitBreaker {
  const created = createCircuitBreaker(options);
  breakers.push(created);
  return created;
}

/** A breaker on a clock the test moves by hand (ms). */
function clocked(options: CircuitBreakerOptions): { b: StandaloneCircuitBreaker; clock: { now: number } } {
  const clock = { now: 0 };
  const b = standaloneBreaker(resolveBreakerOptions(options), () => clock.now);
  breakers.push(b);
  return { b, clock };
}

afterEach(() => {
  for (const b of breakers.splice(0)) b.dispose();
});

/** Resolves on the breaker's next change into `to`; subscribe before causing it. */
function nextState(b: StandaloneCircuitBreaker, to: CircuitState): Promise<CircuitTransition> {
  return new Promise((resolve) => {
    const off = b.onStateChange((transition) => {
      if (transition.to !== to) return;
      off();
      resolve(transition);
    });
  });
}

const fail = (message = 'upstream down') => () => Promise.reject(new Error(message));
const ok = async () => 'ok';

describe('createCircuitBreaker', () => {
  it('opens after failureThreshold failures, rejects with BrokenCircuitError while open without calling, half-opens at resetTimeout and closes on success', async () => {
    const { b, clock } = clocked({ failureThreshold: 2, successThreshold: 1, resetTimeout: 30 });
    const seen: string[] = [];
    b.onStateChange(({ from, to }) => seen.push(`${from}→${to}`));
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(fail())).rejects.toThrow('upstream down');
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(fail())).rejects.toThrow('upstream down');
    expect(b.state).toBe(CircuitState.OPEN);

    let called = false;
    clock.now = 29.9;
    const refused = await b
      .execute(() => {
        called = true;
        return 1;
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BrokenCircuitError);
    expect(refused).toMatchObject({ name: 'BrokenCircuitError', code: 'CIRCUIT_OPEN' });
    expect(isOrchestratorError(refused)).toBe(true);
    expect(called).toBe(false);
    expect(b.state).toBe(CircuitState.OPEN);

    clock.now = 30;
    await expect(b.execute(async () => 'fresh')).resolves.toBe('fresh');
    expect(b.state).toBe(CircuitState.CLOSED);
    expect(seen).toEqual(['closed→open', 'open→half-open', 'half-open→closed']);
  });

  it('needs successThreshold successes to close; one failure while half-open reopens for twice as long', async () => {
    const { b, clock } = clocked({ failureThreshold: 1, successThreshold: 2, resetTimeout: 20 });
    await b.execute(fail()).catch(() => undefined);
    clock.now = 20;
    await b.execute(ok);
    expect(b.state).toBe(CircuitState.HALF_OPEN);
    await expect(b.execute(fail('again'))).rejects.toThrow('again');
    expect(b.state).toBe(CircuitState.OPEN);
    clock.now = 59;
    await expect(b.execute(ok)).rejects.toBeInstanceOf(BrokenCircuitError);
    clock.now = 60;
    await b.execute(ok);
    expect(b.state).toBe(CircuitState.HALF_OPEN);
    await b.execute(ok);
    expect(b.state).toBe(CircuitState.CLOSED);
  });

  it('doubles the open time with each trip up to maxResetTimeout; closing starts again at resetTimeout', async () => {
    const { b, clock } = clocked({ failureThreshold: 1, successThreshold: 1, resetTimeout: 10, maxResetTimeout: 50 });
    /** Moves the clock 1 ms at a time until a failing call is let through (and trips it again); returns the ms that took. */
    const openFor = async (): Promise<number> => {
      const openedAt = clock.now;
      for (;;) {
        clock.now++;
        const outcome = await b.execute(fail()).catch((e: unknown) => e);
        if (!(outcome instanceof BrokenCircuitError)) return clock.now - openedAt;
      }
    };
    await b.execute(fail()).catch(() => undefined);
    const waits = [];
    for (let trip = 1; trip <= 5; trip++) waits.push(await openFor());
    expect(waits).toEqual([10, 20, 40, 50, 50]);
    clock.now += 50;
    await expect(b.execute(ok)).resolves.toBe('ok');
    expect(b.state).toBe(CircuitState.CLOSED);
    await b.execute(fail()).catch(() => undefined);
    expect(await openFor()).toBe(10);
  });

  it('admits only halfOpenMaxConcurrent calls at once while half-open', async () => {
    const { b, clock } = clocked({ failureThreshold: 1, successThreshold: 1, resetTimeout: 20, halfOpenMaxConcurrent: 1 });
    await b.execute(fail()).catch(() => undefined);
    clock.now = 20;
    let release!: (value: string) => void;
    const probe = b.execute(() => new Promise<string>((resolve) => (release = resolve)));
    expect(b.state).toBe(CircuitState.HALF_OPEN);
    await expect(b.execute(async () => 'second')).rejects.toBeInstanceOf(BrokenCircuitError);
    release('probe');
    await expect(probe).resolves.toBe('probe');
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(async () => 'after')).resolves.toBe('after');
  });

  it('counts a synchronous throw as a failure and passes the error through unchanged', async () => {
    const b = breaker({ failureThreshold: 1, resetTimeout: 60_000 });
    const original = new RangeError('bad input');
    const thrown = await b
      .execute(() => {
        throw original;
      })
      .catch((e: unknown) => e);
    expect(thrown).toBe(original);
    expect(b.state).toBe(CircuitState.OPEN);
  });

  it('isolate holds it open past resetTimeout; reset closes it', async () => {
    const { b, clock } = clocked({ failureThreshold: 1, resetTimeout: 20 });
    await b.execute(fail()).catch(() => undefined);
    b.isolate();
    clock.now = 1_000_000;
    await expect(b.execute(async () => 1)).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(b.state).toBe(CircuitState.OPEN);
    b.reset();
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(async () => 2)).resolves.toBe(2);
  });

  it('half-opens by its timer with no call, and not before the clock says the time is up', async () => {
    const clock = { now: 0, reads: 0, onRead: (): void => undefined };
    const b = standaloneBreaker(resolveBreakerOptions({ failureThreshold: 1, resetTimeout: 5 }), () => {
      clock.reads++;
      clock.onRead();
      return clock.now;
    });
    breakers.push(b);
    await b.execute(fail()).catch(() => undefined);
    expect(b.state).toBe(CircuitState.OPEN);
    // The timer fires after 5 real ms but this clock has not moved: it must re-arm, not half-open.
    const timerRead = new Promise<void>((resolve) => (clock.onRead = resolve));
    await timerRead;
    expect(b.state).toBe(CircuitState.OPEN);
    const halfOpen = nextState(b, CircuitState.HALF_OPEN);
    clock.now = 5;
    await halfOpen;
    expect(b.state).toBe(CircuitState.HALF_OPEN);
  });

  it('with the real clock, its timer half-opens it', async () => {
    const b = breaker({ failureThreshold: 1, resetTimeout: 5 });
    const halfOpen = nextState(b, CircuitState.HALF_OPEN);
    await b.execute(fail()).catch(() => undefined);
    expect(await halfOpen).toEqual({ from: CircuitState.OPEN, to: CircuitState.HALF_OPEN });
  });

  it('onStateChange returns a function that removes the listener', async () => {
    const b = breaker({ failureThreshold: 1, resetTimeout: 60_000 });
    const seen: string[] = [];
    const off = b.onStateChange(({ to }) => seen.push(to));
    off();
    await b.execute(fail()).catch(() => undefined);
    expect(b.state).toBe(CircuitState.OPEN);
    expect(seen).toEqual([]);
  });

  it('rejects invalid options with InvalidOptionsError naming the field', () => {
    expect(() => createCircuitBreaker({ failureThreshold: 0 })).toThrow(InvalidOptionsError);
    expect(() => createCircuitBreaker({ failureThreshold: 0 })).toThrow(expect.objectContaining({ field: 'circuitBreaker.failureThreshold' }));
    expect(() => createCircuitBreaker({ resetTimeout: 1_000, maxResetTimeout: 10 })).toThrow(expect.objectContaining({ field: 'circuitBreaker.maxResetTimeout' }));
  });
});

describe('withCircuitBreaker', () => {
  it('wraps a function: passes arguments and results through, opens after failures, then refuses', async () => {
    let up = true;
    let calls = 0;
    const guarded = withCircuitBreaker(
      async (a: number, b: number) => {
        calls++;
        if (!up) throw new Error('service down');
        return a + b;
      },
      { failureThreshold: 2, successThreshold: 1, resetTimeout: 30 },
    );
    breakers.push(guarded.breaker);
    await expect(guarded(2, 3)).resolves.toBe(5);
    up = false;
    await expect(guarded(1, 1)).rejects.toThrow('service down');
    const halfOpen = nextState(guarded.breaker, CircuitState.HALF_OPEN);
    await expect(guarded(1, 1)).rejects.toThrow('service down');
    expect(guarded.breaker.state).toBe(CircuitState.OPEN);
    await expect(guarded(1, 1)).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(calls).toBe(3);
    up = true;
    await halfOpen;
    await expect(guarded(4, 5)).resolves.toBe(9);
    expect(guarded.breaker.state).toBe(CircuitState.CLOSED);
  });

  it('each wrapped function has its own breaker', async () => {
    const a = withCircuitBreaker(async () => {
      throw new Error('a down');
    }, { failureThreshold: 1, resetTimeout: 60_000 });
    const b = withCircuitBreaker(async () => 'b ok', { failureThreshold: 1, resetTimeout: 60_000 });
    breakers.push(a.breaker, b.breaker);
    await a().catch(() => undefined);
    expect(a.breaker.state).toBe(CircuitState.OPEN);
    expect(b.breaker.state).toBe(CircuitState.CLOSED);
    await expect(b()).resolves.toBe('b ok');
  });
});
