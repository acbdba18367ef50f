// Recovery plumbing: how long after a worker process is SIGKILLed do its jobs run elsewhere?
//
//   measureRecovery({ file, module, variant, ctx, jobs, concurrency, timeoutMs, log })
//
// 1. `jobs` no-op jobs are committed by a producer process (the caller has run setup(ctx)).
// 2. A victim worker process (child.mjs, mode 'victim') starts; its handlers never finish, so
//    every job it takes stays in progress (started, or claimed and waiting behind a stuck handler
//    in a library that fetches batches). Wait until it has started all `jobs`, or has started
//    some and then nothing more for 500 ms.
// 3. A rescuer worker process (mode 'rescuer') starts and reports ready; it finds nothing to do.
// 4. t_kill is stamped and the victim gets SIGKILL.
// 5. Each job's first start in the rescuer is timestamped (same clock: performance.timeOrigin +
//    performance.now() in both processes); the run ends when every job has started there, or at
//    `timeoutMs`. Reported: ms from t_kill to the first and to the last job started, and how many
//    were recovered within the time.
// A contender declares `export const recovery = { supported, options?, note, probeMs?, expectedMs? }`
// (expectedMs: the runner skips it when its time limit is shorter, as in --quick):
// `options` are merged into the variant's options for both workers (e.g. a short lease); a
// contender that does not recover in bounded time says so (`supported: false`) and may still be
// probed for `probeMs` to show that its jobs stay locked.
import { deadline, now, runChild, sleep } from './lib.mjs';

export async function measureRecovery({ file, module, variant = 0, ctx, jobs = 10, concurrency = 10, timeoutMs = 15_000, probeMs, log = () => {} }) {
  const spec = module.recovery ?? { supported: false, note: 'the contender declares no recovery' };
  const wait = spec.supported ? timeoutMs : spec.probeMs && (probeMs ?? spec.probeMs);
  if (!wait) return { supported: false, note: spec.note };
  const job = (role, params, extra = {}) => ({ contender: file, variant, ctx: { ...ctx, ...extra }, role, params });
  const recoveryCtx = { recovery: spec.options ?? {} };

  await runChild(job('produce', { count: jobs, mode: 'bulk' }), { label: 'recovery producer', timeoutMs: 60_000 }).done;

  const victimStarts = new Map();
  let allStarted;
  let settle = null;
  const victimHoldsAll = new Promise((resolve) => (allStarted = resolve));
  const victim = runChild(job('work', { count: jobs, concurrency, mode: 'victim' }, recoveryCtx), {
    label: 'recovery victim',
    timeoutMs: 120_000,
    onMessage: (message) => {
      if (message.type === 'started' && !victimStarts.has(message.i)) {
        victimStarts.set(message.i, message.t);
        clearTimeout(settle);
        if (victimStarts.size === jobs) allStarted();
        else settle = setTimeout(allStarted, 500);
      }
    },
  });
  victim.done.catch(() => {}); // it is killed: no result expected
  const victimTimeout = deadline(30_000).then(() => 'timeout');
  if ((await Promise.race([victimHoldsAll, victimTimeout])) === 'timeout') {
    victim.child.kill('SIGKILL');
    throw new Error(`the victim started no job in 30 s`);
  }

  const rescued = new Map();
  let readyResolve;
  const rescuerReady = new Promise((resolve) => (readyResolve = resolve));
  let allRescued;
  const rescuedAll = new Promise((resolve) => (allRescued = resolve));
  const rescuer = runChild(job('work', { count: jobs, concurrency, mode: 'rescuer' }, recoveryCtx), {
    label: 'recovery rescuer',
    timeoutMs: wait + 60_000,
    onMessage: (message) => {
      if (message.type === 'ready') readyResolve();
      if (message.type === 'started' && !rescued.has(message.i)) {
        rescued.set(message.i, message.t);
        if (rescued.size === jobs) allRescued();
      }
    },
  });
  await rescuerReady;
  await sleep(200); // let it settle into waiting
  const rescuedBeforeKill = rescued.size;

  const killedAt = now();
  victim.child.kill('SIGKILL');
  log(`victim (pid ${victim.child.pid}) killed with ${victimStarts.size} handlers started; waiting up to ${wait} ms`);
  await Promise.race([rescuedAll, deadline(wait)]);
  const waitedMs = now() - killedAt;
  rescuer.child.send({ type: 'stop' });
  await rescuer.done.catch((error) => log(`rescuer: ${error.message}`));
  const times = [...rescued.values()].map((t) => t - killedAt).sort((a, b) => a - b);
  return {
    supported: spec.supported,
    note: spec.note,
    options: spec.options,
    jobs,
    startedByVictim: victimStarts.size,
    rescuedBeforeKill,
    recovered: times.length,
    waitedMs,
    probedOnly: !spec.supported,
    firstMs: times.length ? times[0] : null,
    lastMs: times.length === jobs ? times[times.length - 1] : null,
  };
}
