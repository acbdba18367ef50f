// Markdown tables of a bench/pg/run.mjs result (the JSON it prints), for bench/run.mjs and stderr.
import { fmt, fmtInt, fmtRatio, table } from '../common.mjs';

const dash = '–';
const num = (x, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? dash : fmt(x, digits));
const int = (x) => (x === null || x === undefined || !Number.isFinite(x) ? dash : fmtInt(x));

export function renderMarkdown(out) {
  const rows = Object.entries(out.contenders);
  const m = out.machine;
  const lines = [
    `PostgreSQL queue benchmark, ${m.date}: Node ${m.node}, ${m.cores} cores (${m.cpu}), load ${m.loadAverage.map((l) => fmt(l, 2)).join(' / ')}; PostgreSQL ${out.versions.postgres}; ${Math.round(out.seconds)} s${out.config.quick ? ' (--quick)' : ''}.`,
  ];
  if (out.phases.includes('throughput')) {
    const ceiling = out.ratios?.ceiling;
    lines.push(
      '',
      `**Throughput**: no-op jobs committed first, then one worker process at concurrency ${out.config.concurrency}; median of ${out.config.rounds} round(s), order rotated. Per job (median round): statements and commits counted by the worker's client between first handler start and last handler end; server commits (${out.config.ownDatabase ? 'own database' : 'whole database, other sessions included'}, whole worker process) and row writes (the run's schema).`,
      '',
      table(
        ['contender', 'jobs', 'jobs/s', 'per round', 'with close', `/ ${ceiling ?? 'ceiling'}`, 'stmts/job', 'commits/job', 'server commits/job', 'row writes/job', 'worker CPU µs/job', 'enqueue jobs/s'],
        rows.map(([label, e]) => {
          const t = e.throughput;
          if (!t) return [label, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash];
          if (t.error && !t.jobsPerSec) return [label, `failed: ${t.error.slice(0, 120)}`, '', '', '', '', '', '', '', '', '', ''];
          return [
            label,
            int(t.jobs),
            `**${int(t.jobsPerSec)}**`,
            (t.jobsPerSecRuns ?? [t.jobsPerSec]).map(int).join(' / ') + (t.error ? ` (a round failed: ${t.error.slice(0, 60)})` : ''),
            int(t.jobsPerSecWithClose),
            out.ratios?.overCeiling?.[label] !== undefined ? fmtRatio(out.ratios.overCeiling[label]) : dash,
            e.kind === 'redis' ? `${num(t.perJob.statements)} (Redis cmds)` : num(t.perJob.statements),
            num(t.perJob.commits),
            num(t.perJob.serverCommits),
            num(t.perJob.rowWrites),
            num(t.perJob.workerCpuUs, 0),
            int(t.produceJobsPerSec),
          ];
        }),
      ),
    );
    if (out.ratios && Object.keys(out.ratios.oursOver).length) {
      lines.push('', table(['ours over', 'ratio'], Object.entries(out.ratios.oursOver).map(([k, v]) => [k, fmtRatio(v)])));
    }
  }
  if (out.phases.includes('latency')) {
    lines.push(
      '',
      `**Latency**: jobs submitted one by one ${out.config.gapMs} ms apart to an idle worker; handler start − submit time, ms.`,
      '',
      table(
        ['contender', 'jobs', 'p50', 'p90', 'p99', 'max', 'submit p50'],
        rows.map(([label, e]) => {
          const l = e.latency;
          if (!l) return [label, dash, dash, dash, dash, dash, dash];
          if (l.error) return [label, `failed: ${l.error.slice(0, 120)}`, '', '', '', '', ''];
          return [label, int(l.jobs), `**${num(l.p50, 1)}**`, num(l.p90, 1), `**${num(l.p99, 1)}**`, num(l.max, 1), num(l.submitP50, 1)];
        }),
      ),
    );
  }
  const rec = rows.filter(([, e]) => e.recovery);
  if (rec.length) {
    lines.push(
      '',
      '**Recovery**: a worker process holding jobs is SIGKILLed; ms until each job starts in another live worker process.',
      '',
      table(
        ['contender', 'recovered', 'first ms', 'last ms', 'waited ms', 'how'],
        rec.map(([label, e]) => {
          const r = e.recovery;
          if (r.error) return [label, `failed: ${r.error.slice(0, 120)}`, '', '', '', ''];
          if (r.jobs === undefined) return [label, r.skipped ? `skipped: ${r.skipped}` : 'not run', dash, dash, dash, r.note ?? ''];
          const early = r.rescuedBeforeKill ? ` (${r.rescuedBeforeKill} before the kill)` : '';
          return [label, `${r.recovered}/${r.jobs}${early}`, num(r.firstMs, 0), num(r.lastMs, 0), num(r.waitedMs, 0), r.note ?? ''];
        }),
      ),
    );
  }
  const notes = rows.filter(([, e]) => e.sizesNote).map(([label, e]) => `- ${label}: ${e.sizesNote}`);
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}
