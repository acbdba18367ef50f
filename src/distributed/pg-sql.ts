import type { PgQueryConfig } from './pg-types.js';

/**
 * The statements of the PostgreSQL backend, one small function each, built once per schema and
 * prepared by name on each connection. Times come from the database's clock (`NOW`), never from
 * a node's: leases and retry times then agree across machines whatever their clocks say.
 *
 * Choices measured on PostgreSQL 15 with 20,000 queued rows (see BENCHMARKS.md):
 * - A claim selects ids with `id = any(array(select … for update skip locked))`. Written as a
 *   CTE joined back to the table, the planner chose a nested loop over the whole batch at large
 *   batch sizes (quadratic); the array form is a plain index lookup per id.
 * - Batched writes pass their rows as one jsonb parameter (`jsonb_to_recordset`) and fence on
 *   the claim token inside the `update … from`: one round trip and one commit per batch.
 */

const NOW = '(extract(epoch from statement_timestamp()) * 1000)';
const FINISHED = `('completed', 'failed', 'timeout', 'cancelled')`;
/** A queued row whose next attempt is not due yet: a task waiting for its retry ('retrying' is not stored). */
const RETRYING = `(status = 'queued' and attempt > 0 and run_at > ${NOW})`;

/** Columns a claimed task is returned with (its row as a node needs it to run the task). */
const CLAIMED = `t.id, t.seq::float8 as seq, t.type, t.priority, t.capabilities, t.payload, t.metadata, t.options, t.attempt,
  t.claim_token::text as token, t.submitter, t.watchers, t.trace`;
/** The same, read from the claim's CTE `c`. */
const CLAIMED_OUT = 'c.id, c.seq, c.type, c.priority, c.capabilities, c.payload, c.metadata, c.options, c.attempt, c.token, c.submitter, c.trace';

export interface Statements {
  insertTasks(batch: string, node: string, channel: string): PgQueryConfig;
  claim(node: string, leaseMs: number, capabilitySets: readonly (readonly string[])[], limit: number): PgQueryConfig;
  /** Outcomes (fenced), with the audit entries and node messages waiting to go. */
  settle(batch: string, audit: string, node: string, channel: string, channels: readonly string[], payloads: readonly string[]): PgQueryConfig;
  appendAudit(audit: string, node: string): PgQueryConfig;
  heartbeat(node: string, leaseMs: number, running: number, agents: string): PgQueryConfig;
  registerNode(node: string, host: string, pid: number, agents: string): PgQueryConfig;
  leaveNode(node: string): PgQueryConfig;
  reap(limit: number, staleMs: number, node: string, channel: string): PgQueryConfig;
  age(agingMs: number): PgQueryConfig;
  cancel(taskId: string, reason: string, node: string): PgQueryConfig;
  watch(taskId: string, node: string): PgQueryConfig;
  pruneAudit(maxEvents: number): PgQueryConfig;
  expireAudit(retainMs: number): PgQueryConfig;
  saveCheckpoints(batch: string): PgQueryConfig;
  deleteCheckpoints(ids: readonly string[]): PgQueryConfig;
  putDeadLetters(batch: string): PgQueryConfig;
  deleteDeadLetters(ids: readonly string[]): PgQueryConfig;
  listDeadLetters(): PgQueryConfig;
  /** Entries older than `retainMs` are not read (the periodic delete of them may not have run yet). */
  history(taskId: string, retainMs: number): PgQueryConfig;
  audit(since: number, limit: number, type: string | null, retainMs: number): PgQueryConfig;
  findTask(taskId: string): PgQueryConfig;
  /** `statuses` may name 'retrying': a queued row whose next attempt is not due yet. */
  listTasks(statuses: readonly string[] | null, type: string | null, limit: number): PgQueryConfig;
  statuses(ids: readonly string[]): PgQueryConfig;
  nodes(staleMs: number): PgQueryConfig;
  counts(): PgQueryConfig;
  nextRunAt(): PgQueryConfig;
  saveProgress(taskId: string, sequence: number, body: string): PgQueryConfig;
  loadProgress(taskId: string): PgQueryConfig;
}

/** The statements of one schema (a validated name: see `checkSchemaName`). */
export function statements(schema: string): Statements {
  const s = schema;
  const named = (name: string, text: string, values: unknown[]): PgQueryConfig => ({ name: `po_${name}_${s}`, text, values });
  const texts = {
    insertTasks: `
      with r as (
        select * from jsonb_to_recordset($1::jsonb) as r(id text, type text, priority int2, capabilities text[],
          payload jsonb, metadata jsonb, options jsonb, max_attempts int4, trace jsonb)
      ), ins as (
        insert into ${s}.tasks as t (id, type, priority, level, level_since, capabilities, payload, metadata, options,
          max_attempts, status, attempt, run_at, submitter, watchers, trace, submitted_at, updated_at)
        select id, type, priority, priority, ${NOW}, capabilities, payload, coalesce(metadata, '{}'), coalesce(options, '{}'),
          max_attempts, 'queued', 0, ${NOW}, $2, array[$2], trace, ${NOW}, ${NOW} from r
        on conflict (id) do update set type = excluded.type, priority = excluded.priority, level = excluded.level,
          level_since = excluded.level_since, capabilities = excluded.capabilities,
          payload = excluded.payload, metadata = excluded.metadata, options = excluded.options, max_attempts = excluded.max_attempts,
          status = 'queued', attempt = 0, run_at = excluded.run_at, owner = null, claim_token = null, lease_until = null,
          cancel_requested = null, submitter = excluded.submitter, watchers = excluded.watchers, agent_id = null, result = null,
          error = null, trace = excluded.trace, submitted_at = excluded.submitted_at, updated_at = excluded.updated_at
        where t.status in ${FINISHED}
        returning t.id, t.level
      )
      select array(select id from ins) as ids,
        (select pg_notify($3, min(level)::text) from ins having count(*) > 0) as notified`,
    // A task is claimed when its capabilities are contained in one of the node's admitting agents'
    // sets ($5, $6, …: one parameter per set, ORed, so the planner sees a plain filter on the
    // queue index; a set-returning subquery per row was several times slower). Watchers that
    // left the node registry are dropped: a submitter that has shut down is told nothing (every
    // watcher registers before it submits or watches, so one missing at the claim has left).
    claim: (sets: number) => `
      with c as (
        update ${s}.tasks t set status = 'running', owner = $1, claim_token = nextval('${s}.claim_tokens'),
          lease_until = ${NOW} + $2, attempt = t.attempt + 1, started_at = ${NOW}, updated_at = ${NOW}
        where t.id = any(array(
          select q.id from ${s}.tasks q where q.status = 'queued' and q.run_at <= ${NOW}
            and (${Array.from({ length: sets }, (_, i) => `q.capabilities <@ $${i + 4}::text[]`).join(' or ')})
          order by q.level, q.seq limit $3 for update skip locked))
        returning ${CLAIMED}
      )
      select ${CLAIMED_OUT}, cp.state as checkpoint, cp.task_id is not null as has_checkpoint,
        array(select w from unnest(c.watchers) as w where exists (select 1 from ${s}.nodes n where n.id = w)) as watchers
      from c left join ${s}.checkpoints cp on cp.task_id = c.id`,
    settle: `
      with u as (
        select * from jsonb_to_recordset($1::jsonb) as u(id text, token bigint, status text, result jsonb, error jsonb,
          agent text, delay float8, attempt int4, dead jsonb, audit jsonb)
      ), s as (
        update ${s}.tasks t set status = u.status, result = u.result, error = u.error, agent_id = coalesce(u.agent, t.agent_id),
          attempt = coalesce(u.attempt, t.attempt), owner = null, claim_token = null, lease_until = null, cancel_requested = null,
          run_at = case when u.status = 'queued' then ${NOW} + coalesce(u.delay, 0) else t.run_at end,
          level = case when u.status = 'queued' then t.priority else t.level end,
          level_since = case when u.status = 'queued' then ${NOW} else t.level_since end,
          updated_at = ${NOW}
        from u where t.id = u.id and t.claim_token = u.token and t.status = 'running'
        returning t.id, u.token, t.watchers, t.level, t.status
      ), d as (
        insert into ${s}.dead_letters as d (task_id, row, error, code, attempts, failed_at)
        select u.id, u.dead -> 'row', u.dead -> 'error', u.dead ->> 'code', (u.dead ->> 'attempts')::int4, ${NOW}
        from u join s on s.id = u.id and s.token = u.token where u.dead is not null
        on conflict (task_id) do update set row = excluded.row, error = excluded.error, code = excluded.code,
          attempts = excluded.attempts, failed_at = excluded.failed_at
      ), a as (
        -- The entries waiting to ride along, then the outcomes' own: those only for outcomes recorded
        -- here (fenced by the claim token), so a node killed after this commit leaves none missing.
        insert into ${s}.audit (ts, type, task_id, agent_id, attempt, details, node)
        select ts, type, task, agent, attempt, details, $3 from jsonb_to_recordset($2::jsonb)
          as a(ts float8, type text, task text, agent text, attempt int4, details jsonb)
        union all
        select o.ts, o.type, u.id, o.agent, o.attempt, o.details, $3
        from u join s on s.id = u.id and s.token = u.token cross join lateral jsonb_to_recordset(u.audit)
          as o(ts float8, type text, agent text, attempt int4, details jsonb)
      ), c as (
        -- A completed task's checkpoint goes with its outcome (as the journal's later delete would).
        delete from ${s}.checkpoints cp using s where cp.task_id = s.id and s.status = 'completed'
      ), n as (
        select pg_notify(c, p) from unnest($5::text[], $6::text[]) as n(c, p)
      )
      select array(select id || ':' || token from s) as ids, (select count(*) from n) as messages,
        (select pg_notify($4, min(level)::text) from s where status = 'queued' having count(*) > 0) as notified`,
    appendAudit: `
      insert into ${s}.audit (ts, type, task_id, agent_id, attempt, details, node)
      select ts, type, task, agent, attempt, details, $2 from jsonb_to_recordset($1::jsonb)
        as a(ts float8, type text, task text, agent text, attempt int4, details jsonb)`,
    heartbeat: `
      with n as (
        update ${s}.nodes set heartbeat_at = ${NOW}, running = $3, agents = $4::jsonb where id = $1 returning id
      ), l as (
        update ${s}.tasks set lease_until = ${NOW} + $2 where owner = $1 and status = 'running'
        returning id, claim_token::text as token, cancel_requested
      )
      select (select count(*) from n)::int4 as registered, array(select id from l) as ids, array(select token from l) as tokens,
        array(select id from l where cancel_requested is not null) as cancels,
        array(select cancel_requested from l where cancel_requested is not null) as reasons`,
    registerNode: `
      insert into ${s}.nodes (id, host, pid, started_at, heartbeat_at, agents) values ($1, $2, $3, ${NOW}, ${NOW}, $4::jsonb)
      on conflict (id) do update set heartbeat_at = excluded.heartbeat_at, agents = excluded.agents`,
    leaveNode: `delete from ${s}.nodes where id = $1`,
    reap: `
      with x as (
        select id, owner from ${s}.tasks where status = 'running' and lease_until < ${NOW}
        order by lease_until limit $1 for update skip locked
      ), r as (
        update ${s}.tasks t set status = case when t.attempt >= t.max_attempts then 'failed' else 'queued' end,
          owner = null, claim_token = null, lease_until = null, cancel_requested = null, run_at = ${NOW},
          level = t.priority, level_since = ${NOW}, updated_at = ${NOW},
          error = case when t.attempt >= t.max_attempts then jsonb_build_object('name', 'WorkerCrashedError',
            'message', 'worker ' || coalesce(x.owner, '?') || ' running task ' || t.id || ' stopped heartbeating (attempt '
              || t.attempt || ' of ' || t.max_attempts || ')',
            'props', jsonb_build_object('code', 'WORKER_CRASHED', 'taskId', t.id)) else t.error end
        from x where t.id = x.id
        returning t.id, t.type, t.priority, t.capabilities, t.payload, t.metadata, t.options, t.status, t.attempt, t.error,
          t.watchers, t.level, x.owner
      ), d as (
        insert into ${s}.dead_letters as d (task_id, row, error, code, attempts, failed_at)
        select id, jsonb_build_object('id', id, 'type', type, 'priority', priority, 'capabilities', capabilities, 'payload', payload,
          'metadata', metadata, 'options', options), error, 'WORKER_CRASHED', attempt, ${NOW} from r where status = 'failed'
        on conflict (task_id) do update set row = excluded.row, error = excluded.error, code = excluded.code,
          attempts = excluded.attempts, failed_at = excluded.failed_at
      ), a as (
        -- A task whose last attempt died ends as any failed task does: 'failed', then 'dead-lettered'.
        insert into ${s}.audit (ts, type, task_id, agent_id, attempt, details, node)
        select ${NOW}, 'failed', id, null, attempt, jsonb_build_object('error', error ->> 'message', 'code', 'WORKER_CRASHED'), $3
        from r where status = 'failed'
        union all
        select ${NOW}, case when status = 'failed' then 'dead-lettered' else 'recovered' end, id, null, attempt,
          jsonb_build_object('previousStatus', 'running', 'node', owner), $3 from r
      ), gone as (
        delete from ${s}.nodes where heartbeat_at < ${NOW} - $2
      )
      select r.id, r.status, r.attempt, r.error, r.watchers, r.owner,
        (select pg_notify($4, min(level)::text) from r where status = 'queued' having count(*) > 0) as notified
      from r`,
    age: `
      update ${s}.tasks set level = level - 1, level_since = ${NOW}
      where status = 'queued' and level > 0 and level_since <= ${NOW} - $1`,
    cancel: `
      with o as (
        select id, status, owner, watchers from ${s}.tasks where id = $1 and status in ('queued', 'running') for update
      ), c as (
        update ${s}.tasks t set
          status = case when o.status = 'queued' then 'cancelled' else t.status end,
          cancel_requested = case when o.status = 'running' then $2 else null end,
          error = case when o.status = 'queued' then jsonb_build_object('name', 'TaskCancelledError', 'message', $2::text,
            'props', jsonb_build_object('code', 'TASK_CANCELLED')) else t.error end,
          updated_at = ${NOW}
        from o where t.id = o.id returning t.id
      ), a as (
        insert into ${s}.audit (ts, type, task_id, attempt, details, node)
        select ${NOW}, 'cancelled', o.id, null, jsonb_build_object('reason', $2::text), $3 from o where o.status = 'queued'
      )
      select o.status as was, o.owner, o.watchers from o join c on c.id = o.id`,
    watch: `
      update ${s}.tasks set watchers = array_append(watchers, $2) where id = $1 and not ($2 = any(watchers))`,
    // A range delete on the primary key: cheap enough to run before every read of the trail.
    pruneAudit: `delete from ${s}.audit where seq <= (select max(seq) from ${s}.audit) - $1`,
    // No index on ts (every insert would pay for it): this one scans, so it runs rarely.
    expireAudit: `delete from ${s}.audit where ts < ${NOW} - $1`,
    saveCheckpoints: `
      insert into ${s}.checkpoints (task_id, state, saved_at)
      select id, state, ${NOW} from jsonb_to_recordset($1::jsonb) as r(id text, state jsonb)
      on conflict (task_id) do update set state = excluded.state, saved_at = excluded.saved_at`,
    deleteCheckpoints: `delete from ${s}.checkpoints where task_id = any($1::text[])`,
    putDeadLetters: `
      insert into ${s}.dead_letters (task_id, row, error, code, attempts, failed_at)
      select id, row, error, code, attempts, failed_at from jsonb_to_recordset($1::jsonb)
        as r(id text, row jsonb, error jsonb, code text, attempts int4, failed_at float8)
      on conflict (task_id) do update set row = excluded.row, error = excluded.error, code = excluded.code,
        attempts = excluded.attempts, failed_at = excluded.failed_at`,
    deleteDeadLetters: `delete from ${s}.dead_letters where task_id = any($1::text[])`,
    listDeadLetters: `select task_id, row, error, code, attempts, failed_at from ${s}.dead_letters order by failed_at, task_id`,
    history: `
      select seq::float8 as seq, ts, type, task_id, agent_id, attempt, details from ${s}.audit
      where task_id = $1 and ts >= ${NOW} - $2 order by seq`,
    audit: `
      select seq::float8 as seq, ts, type, task_id, agent_id, attempt, details from ${s}.audit
      where seq > $1 and ($3::text is null or type = $3) and ts >= ${NOW} - $4 order by seq limit $2`,
    findTask: `select *, ${RETRYING} as retrying from ${s}.tasks where id = $1`,
    listTasks: `
      select *, ${RETRYING} as retrying from ${s}.tasks
      where ($1::text[] is null or (case when ${RETRYING} then 'retrying' else status end) = any($1)) and ($2::text is null or type = $2)
      order by seq desc limit $3`,
    statuses: `select id, status, attempt, agent_id, submitter, owner, result, error, run_at > ${NOW} as delayed from ${s}.tasks where id = any($1::text[])`,
    nodes: `select id, host, pid, heartbeat_at, agents, running from ${s}.nodes where heartbeat_at >= ${NOW} - $1 order by started_at`,
    counts: `
      select count(*) filter (where status = 'queued')::float8 as queued, count(*) filter (where status = 'running')::float8 as running
      from ${s}.tasks where status in ('queued', 'running')`,
    nextRunAt: `select min(run_at) - ${NOW} as wait from ${s}.tasks where status = 'queued' and run_at > ${NOW}`,
    saveProgress: `
      insert into ${s}.progress (task_id, sequence, body) values ($1, $2, $3::jsonb)
      on conflict (task_id) do update set sequence = excluded.sequence, body = excluded.body`,
    loadProgress: `select sequence, body from ${s}.progress where task_id = $1`,
  };
  const claimTexts: string[] = [];
  return {
    insertTasks: (batch, node, channel) => named('insert', texts.insertTasks, [batch, node, channel]),
    claim: (node, leaseMs, capabilitySets, limit) => {
      const sets = capabilitySets.length;
      // Built once per number of sets: a claim goes out many times a second under load.
      const text = (claimTexts[sets] ??= texts.claim(sets));
      return named(`claim${sets}`, text, [node, leaseMs, limit, ...capabilitySets]);
    },
    settle: (batch, audit, node, channel, channels, payloads) => named('settle', texts.settle, [batch, audit, node, channel, channels, payloads]),
    appendAudit: (audit, node) => named('audit_append', texts.appendAudit, [audit, node]),
    heartbeat: (node, leaseMs, running, agents) => named('heartbeat', texts.heartbeat, [node, leaseMs, running, agents]),
    registerNode: (node, host, pid, agents) => named('register', texts.registerNode, [node, host, pid, agents]),
    leaveNode: (node) => named('leave', texts.leaveNode, [node]),
    reap: (limit, staleMs, node, channel) => named('reap', texts.reap, [limit, staleMs, node, channel]),
    age: (agingMs) => named('age', texts.age, [agingMs]),
    cancel: (taskId, reason, node) => named('cancel', texts.cancel, [taskId, reason, node]),
    watch: (taskId, node) => named('watch', texts.watch, [taskId, node]),
    pruneAudit: (maxEvents) => named('audit_prune', texts.pruneAudit, [maxEvents]),
    expireAudit: (retainMs) => named('audit_expire', texts.expireAudit, [retainMs]),
    saveCheckpoints: (batch) => named('checkpoints', texts.saveCheckpoints, [batch]),
    deleteCheckpoints: (ids) => named('checkpoints_delete', texts.deleteCheckpoints, [ids]),
    putDeadLetters: (batch) => named('dead_letters', texts.putDeadLetters, [batch]),
    deleteDeadLetters: (ids) => named('dead_letters_delete', texts.deleteDeadLetters, [ids]),
    listDeadLetters: () => named('dead_letters_list', texts.listDeadLetters, []),
    history: (taskId, retainMs) => named('history', texts.history, [taskId, retainMs]),
    audit: (since, limit, type, retainMs) => named('audit', texts.audit, [since, limit, type, retainMs]),
    findTask: (taskId) => named('find', texts.findTask, [taskId]),
    listTasks: (statuses, type, limit) => named('list', texts.listTasks, [statuses, type, limit]),
    statuses: (ids) => named('statuses', texts.statuses, [ids]),
    nodes: (staleMs) => named('nodes', texts.nodes, [staleMs]),
    counts: () => named('counts', texts.counts, []),
    nextRunAt: () => named('next_run_at', texts.nextRunAt, []),
    saveProgress: (taskId, sequence, body) => named('progress_save', texts.saveProgress, [taskId, sequence, body]),
    loadProgress: (taskId) => named('progress_load', texts.loadProgress, [taskId]),
  };
}
