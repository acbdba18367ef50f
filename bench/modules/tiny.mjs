// The tiny task of bench/threads.mjs. Piscina calls `inc` with the payload; ours calls the
// default export with the task, which calls the same function.
export function inc(x) {
  return x + 1;
}

export default function tinyTask(task) {
  return inc(task.payload);
}
