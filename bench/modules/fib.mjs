// The CPU-bound task of bench/threads.mjs: naive Fibonacci. Piscina and the main-thread loop
// call `fib` directly; ours calls the default export with the task.
export function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

export default function fibTask(task) {
  return fib(task.payload);
}
