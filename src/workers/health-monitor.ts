/** What the monitor watches: work that should have stopped (timed out or cancelled) but has not. */
export interface Overdue {
  /** When it should have stopped (ms, performance.now()). */
  overdueSince: number;
}

/**
 * Checks every `intervalMs` for work still holding its worker `graceMs` after it timed out or
 * was cancelled, and reports it as stuck. The timer runs only while something is overdue.
 */
export class HealthMonitor<T extends Overdue> {
  readonly #overdue = new Set<T>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly graceMs: number,
    private readonly onStuck: (item: T) => void,
  ) {}

  watch(item: T, now: number): void {
    item.overdueSince = now;
    this.#overdue.add(item);
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.#check(), Math.min(this.intervalMs, Math.max(1, this.graceMs)));
    // What it watches holds a thread, which keeps the process alive while it is busy; the check itself need not.
    this.#timer.unref();
  }

  forget(item: T): void {
    if (this.#overdue.delete(item) && this.#overdue.size === 0) this.stop();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#overdue.clear();
  }

  #check(): void {
    const cutoff = performance.now() - this.graceMs;
    for (const item of [...this.#overdue]) {
      if (item.overdueSince <= cutoff) {
        this.forget(item);
        this.onStuck(item);
      }
    }
  }
}
