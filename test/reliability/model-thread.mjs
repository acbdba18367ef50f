// Thread agent of the model-based fuzz suite (model.test.ts): the payload says what the run does.
// The run's times on the process's monotonic clock go back in its result or error (ranFrom,
// ranTo), for the harness's concurrency check.
export default async function (task) {
  const ranFrom = String(process.hrtime.bigint());
  const { mode, ms } = task.payload;
  if (mode === 'exit' || (mode === 'exitOnce' && task.attempt === 1)) process.exit(1);
  if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, ms));
  if (mode === 'throw') throw Object.assign(new Error('thread handler failed'), { ranFrom, ranTo: String(process.hrtime.bigint()) });
  return { id: task.id, attempt: task.attempt, ranFrom, ranTo: String(process.hrtime.bigint()) };
}
