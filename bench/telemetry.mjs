// Telemetry overhead: the no-op throughput benchmark of bench/throughput.mjs (ours only: 10
// agents, concurrency 10, random priorities, all submitted at once, drained) with telemetry off,
// on without an OpenTelemetry SDK (the default: the API alone, a no-op), and on with the SDK:
// metrics only, spans sampled at 1%, and every span recorded. Modes alternate (the order rotates
// every round) so drift on a shared machine hits them alike.
//
//   node bench/telemetry.mjs     prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_TELEMETRY_RUNS=3 BENCH_TASKS=50000 node bench/telemetry.mjs
//
// The SDK setup is what an application would register: a BasicTracerProvider with a
// BatchSpanProcessor (default sizes) in front of an exporter that drops what it is given (it counts
// the spans, so the report says how many the processor passed on and how many it dropped), and a
// MeterProvider with a periodic reader (its first export would be after 60 s: only the final one,
// at shutdown, runs). Fresh providers per run, shut down (untimed) after it. No context manager is
// registered: its cost (async hooks) is the application's whatever library it traces.
import { ProxyTracerProvider } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { envInt, isMain, median, priorities, rotate, tick } from './common.mjs';
import { AGENTS, CONCURRENCY, runOurs } from './throughput.mjs';

/** A span exporter that keeps nothing: counts what it is given. */
class CountingExporter {
  spans = 0;
  export(spans, done) {
    this.spans += spans.length;
    done({ code: 0 });
  }
  shutdown() {
    return Promise.resolve();
  }
  forceFlush() {
    return Promise.resolve();
  }
}

/** SDK providers for one run; `close()` flushes and shuts them down. */
function sdk({ traces, sampler }) {
  const exporter = new CountingExporter();
  const tracerProvider = traces ? new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)], ...(sampler ? { sampler } : {}) }) : new ProxyTracerProvider();
  const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 60_000 })] });
  return {
    options: { telemetry: { tracerProvider, meterProvider } },
    async close() {
      await Promise.all([traces ? tracerProvider.shutdown() : null, meterProvider.shutdown()]);
      return exporter.spans;
    },
  };
}

export const MODES = [
  { key: 'off', label: 'off: `telemetry: { enabled: false }`', setup: () => ({ options: { telemetry: { enabled: false } } }) },
  { key: 'noSdk', label: 'on, no SDK registered (the default: the API alone)', setup: () => ({ options: {} }) },
  { key: 'metrics', label: 'on, SDK MeterProvider, no tracer provider', setup: () => sdk({ traces: false }) },
  {
    key: 'sampled',
    label: 'on, SDK MeterProvider + BasicTracerProvider sampling 1% (ParentBased(TraceIdRatio 0.01)) + BatchSpanProcessor',
    setup: () => sdk({ traces: true, sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.01) }) }),
  },
  { key: 'sdk', label: 'on, SDK MeterProvider + BasicTracerProvider (every span recorded) + BatchSpanProcessor', setup: () => sdk({ traces: true }) },
];

/**
 * `runs` rounds of one run per mode, after one warm-up run per mode. Overhead of a mode =
 * 1 − its throughput / off's (medians); also the median over rounds of the same within the
 * round, which cancels drift slower than a round.
 */
export async function telemetry({
  tasks = envInt('BENCH_TASKS', 200_000),
  runs = envInt('BENCH_TELEMETRY_RUNS', 10),
  warmupTasks = envInt('BENCH_WARMUP_TASKS', 50_000),
  log = () => {},
} = {}) {
  const pr = priorities(tasks);
  const run = async (mode, n) => {
    const setup = mode.setup();
    const cpu = process.cpuUsage();
    const timing = await runOurs(pr, n, { options: setup.options });
    const { user, system } = process.cpuUsage(cpu);
    const spans = (await setup.close?.()) ?? 0;
    return { ...timing, cpuMs: (user + system) / 1000, spans };
  };
  for (const mode of MODES) {
    await tick();
    await run(mode, Math.min(warmupTasks, tasks));
  }
  log(`telemetry: warm-up done (${warmupTasks} tasks each)`);

  const results = Object.fromEntries(MODES.map((m) => [m.key, { label: m.label, tasksPerSec: [], totalMs: [], cpuMs: [], spansExported: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const mode of rotate(MODES, r)) {
      await tick();
      const { totalMs, cpuMs, spans } = await run(mode, tasks);
      const entry = results[mode.key];
      entry.tasksPerSec.push(tasks / (totalMs / 1000));
      entry.totalMs.push(totalMs);
      entry.cpuMs.push(cpuMs);
      entry.spansExported.push(spans);
      log(`telemetry ${r + 1}/${runs}: ${mode.key} ${Math.round(tasks / (totalMs / 1000))} tasks/s (total ${totalMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms${spans ? `, ${spans} spans exported` : ''})`);
    }
  }
  const off = results.off;
  for (const entry of Object.values(results)) {
    entry.median = median(entry.tasksPerSec);
    entry.totalMsMedian = median(entry.totalMs);
    entry.cpuMsMedian = median(entry.cpuMs);
    entry.spansExportedMedian = median(entry.spansExported);
    entry.overhead = 1 - entry.median / off.median;
    entry.pairedOverheadMedian = median(entry.tasksPerSec.map((value, r) => 1 - value / off.tasksPerSec[r]));
    // CPU time (process.cpuUsage, GC threads included) is steadier than wall time on a shared machine.
    entry.cpuOverhead = entry.cpuMsMedian / off.cpuMsMedian - 1;
    entry.cpuMicrosPerTask = ((entry.cpuMsMedian - off.cpuMsMedian) * 1000) / tasks;
  }
  return { tasks, runs, warmupTasks, concurrency: CONCURRENCY, agents: AGENTS, results, goals: { sdkOverhead: 0.1 } };
}

if (isMain(import.meta.url)) {
  const result = await telemetry({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
