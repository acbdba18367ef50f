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
        ['contender', 'jobs', 'jobs/s', 'per round', 'with close', `/ ${ceiling ?? 'ceiling'}`, 'stmts/job', 'commits/job', 'server commits/job', 'row writes/job', 'worker CPU µs/job', 'server CPU µs/job', 'enqueue jobs/s'],
        rows.map(([label, e]) => {
          const t = e.throughput;
          if (!t) return [label, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash];
          if (t.error && !t.jobsPerSec) return [label, `failed: ${t.error.slice(0, 120)}`, '', '', '', '', '', '', '', '', '', '', ''];
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
            num(t.perJob.serverCpuUs, 0),
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
  const scaled = rows.filter(([, e]) => e.scaleOut);
  if (out.phases.includes('scaleout') && scaled.length) {
    lines.push(
      '',
      `**Scale-out**: the same ${int(out.config.jobs)} no-op jobs committed first, then processed by ${out.config.nodes.join(', ')} worker processes started at once (concurrency ${out.config.concurrency} each), all on this machine's ${m.cores} cores with the server; median of ${out.config.rounds} round(s), every contender at one node count before the next. jobs/s = jobs / (last handler end − first handler start over all workers); speed-up: over 1 process in the same round (median); all busy: handler ends while every worker was running, over that window (share of the jobs in it); per job: client statements and commits summed over the workers, server commits and CPU of the run's backends, worker CPU summed over the processes.`,
      '',
      table(
        ['contender', 'processes', 'jobs/s', 'per round', 'speed-up', 'all busy jobs/s (share)', 'jobs per process', 'stmts/job', 'commits/job', 'server commits/job', 'worker CPU µs/job', 'server CPU µs/job'],
        scaled.flatMap(([label, e]) =>
          Object.entries(e.scaleOut).map(([nodes, r]) => {
            if (r.error && !r.jobsPerSec) return [label, nodes, `failed: ${r.error.slice(0, 120)}`, '', '', '', '', '', '', '', '', ''];
            return [
              label,
              nodes,
              `**${int(r.jobsPerSec)}**`,
              r.jobsPerSecRuns.map(int).join(' / '),
              r.speedUp == null ? dash : fmtRatio(r.speedUp),
              r.allBusy ? `${int(r.allBusy.jobsPerSec)} (${fmt(100 * r.allBusy.share, 0)}%)` : dash,
              r.workers.map((w) => int(w.handled)).join(' / '),
              num(r.perJob.statements, 3),
              num(r.perJob.commits, 3),
              num(r.perJob.serverCommits, 3),
              num(r.perJob.workerCpuUs, 0),
              num(r.perJob.serverCpuUs, 0),
            ];
          }),
        ),
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
  const goals = goalRows(out);
  if (goals.length) lines.push('', table(['goal (issue 10)', 'value', 'goal', 'met'], goals));
  const notes = rows.filter(([, e]) => e.sizesNote).map(([label, e]) => `- ${label}: ${e.sizesNote}`);
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}

/** The goals of issue 10, from ours and graphile-tuned of the same run. */
function goalRows(out) {
  const ours = out.contenders.ours;
  const graphile = out.contenders['graphile-tuned'];
  if (!ours) return [];
  const mark = (ok) => (ok ? 'yes' : '**no**');
  const goals = [];
  if (ours.throughput?.jobsPerSec && graphile?.throughput?.jobsPerSec) {
    const ratio = ours.throughput.jobsPerSec / graphile.throughput.jobsPerSec;
    goals.push(['throughput, ours / graphile-tuned (medians)', fmtRatio(ratio), '≥ 2x', mark(ratio >= 2)]);
    const paired = pairedRatio(ours.throughput.jobsPerSecRuns, graphile.throughput.jobsPerSecRuns);
    if (paired !== null) goals.push(['the same, median over rounds of the ratio within the round', fmtRatio(paired), '(for information)', '']);
  }
  if (ours.latency?.p50 !== undefined && graphile?.latency?.p50 !== undefined) {
    goals.push(['latency p50, ours against graphile-tuned', `${num(ours.latency.p50, 1)} ms / ${num(graphile.latency.p50, 1)} ms`, '≤ graphile-tuned', mark(ours.latency.p50 <= graphile.latency.p50)]);
  }
  if (ours.latency?.p99 !== undefined) goals.push(['latency p99, ours', `${num(ours.latency.p99, 1)} ms`, '< 10 ms', mark(ours.latency.p99 < 10)]);
  const r = ours.recovery;
  if (r?.lastMs != null) goals.push(['recovery at the default lease: SIGKILL to the last job running elsewhere', `${num(r.lastMs, 0)} ms (${r.recovered}/${r.jobs})`, '(for information)', '']);
  return goals;
}

/** Median of ours[i] / theirs[i] over the rounds both ran (the same rotation index, so the same load). */
function pairedRatio(ours, theirs) {
  if (!ours || !theirs) return null;
  const n = Math.min(ours.length, theirs.length);
  if (n === 0) return null;
  const ratios = [];
  for (let i = 0; i < n; i++) ratios.push(ours[i] / theirs[i]);
  ratios.sort((a, b) => a - b);
  return ratios[Math.floor((n - 1) / 2)];
}
