// Thread agent of the model-based fuzz suite (model.test.ts): the payload says what the run does.
export default async function (task) {
  const { mode, ms } = task.payload;
  if (mode === 'exit' || (mode === 'exitOnce' && task.attempt === 1)) process.exit(1);
  if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, ms));
  if (mode === 'throw') throw new Error('thread handler failed');
  return { id: task.id, attempt: task.attempt };
}
