// The standalone breaker exported from the index: createCircuitBreaker and withCircuitBreaker.
import { afterEach, describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  CircuitState,
  InvalidOptionsError,
  createCircuitBreaker,
  isOrchestratorError,
  withCircuitBreaker,
  type CircuitTransition,
  type StandaloneCircuitBreaker,
} from '../src/index.js';

const breakers: StandaloneCircuitBreaker[] = [];

function breaker(options: Parameters<typeof createCircuitBreaker>[0]): StandaloneCircuitBreaker {
  const created = createCircuitBreaker(options);
  breakers.push(created);
  return created;
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

describe('createCircuitBreaker', () => {
  it('opens after failureThreshold failures, rejects with BrokenCircuitError while open without calling, half-opens after resetTimeout and closes on success', async () => {
    const b = breaker({ failureThreshold: 2, successThreshold: 1, resetTimeout: 30 });
    const seen: string[] = [];
    b.onStateChange(({ from, to }) => seen.push(`${from}→${to}`));
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(fail())).rejects.toThrow('upstream down');
    expect(b.state).toBe(CircuitState.CLOSED);
    const halfOpen = nextState(b, CircuitState.HALF_OPEN);
    await expect(b.execute(fail())).rejects.toThrow('upstream down');
    expect(b.state).toBe(CircuitState.OPEN);

    let called = false;
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

    expect(await halfOpen).toEqual({ from: CircuitState.OPEN, to: CircuitState.HALF_OPEN });
    await expect(b.execute(async () => 'fresh')).resolves.toBe('fresh');
    expect(b.state).toBe(CircuitState.CLOSED);
    expect(seen).toEqual(['closed→open', 'open→half-open', 'half-open→closed']);
  });

  it('needs successThreshold successes to close; one failure while half-open reopens', async () => {
    const b = breaker({ failureThreshold: 1, successThreshold: 2, resetTimeout: 20 });
    let halfOpen = nextState(b, CircuitState.HALF_OPEN);
    await b.execute(fail()).catch(() => undefined);
    await halfOpen;
    await b.execute(async () => 1);
    expect(b.state).toBe(CircuitState.HALF_OPEN);
    halfOpen = nextState(b, CircuitState.HALF_OPEN);
    await expect(b.execute(fail('again'))).rejects.toThrow('again');
    expect(b.state).toBe(CircuitState.OPEN);
    await halfOpen;
    await b.execute(async () => 1);
    await b.execute(async () => 2);
    expect(b.state).toBe(CircuitState.CLOSED);
  });

  it('admits only halfOpenMaxConcurrent calls at once while half-open', async () => {
    const b = breaker({ failureThreshold: 1, successThreshold: 1, resetTimeout: 20, halfOpenMaxConcurrent: 1 });
    const halfOpen = nextState(b, CircuitState.HALF_OPEN);
    await b.execute(fail()).catch(() => undefined);
    await halfOpen;
    let release!: (value: string) => void;
    const probe = b.execute(() => new Promise<string>((resolve) => (release = resolve)));
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
    const b = breaker({ failureThreshold: 1, resetTimeout: 20 });
    // A second breaker tripped after the first one is isolated: when it half-opens, the first would have too.
    const clock = breaker({ failureThreshold: 1, resetTimeout: 20 });
    await b.execute(fail()).catch(() => undefined);
    b.isolate();
    const clockHalfOpen = nextState(clock, CircuitState.HALF_OPEN);
    await clock.execute(fail()).catch(() => undefined);
    await clockHalfOpen;
    expect(b.state).toBe(CircuitState.OPEN);
    await expect(b.execute(async () => 1)).rejects.toBeInstanceOf(BrokenCircuitError);
    b.reset();
    expect(b.state).toBe(CircuitState.CLOSED);
    await expect(b.execute(async () => 2)).resolves.toBe(2);
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
