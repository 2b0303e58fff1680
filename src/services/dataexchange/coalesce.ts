/**
 * Runs `task` on request, one execution at a time, and lets requests share executions: a request
 * is served by an execution that starts after it was made, so whatever the caller changed before
 * requesting is covered. Requests made while an execution runs share the single next one.
 */
export class Coalescer {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly task: () => Promise<void>) {}

  request(): Promise<void> {
    if (this.next !== undefined) return this.next;
    const previous = this.running ?? Promise.resolve();
    const execution: Promise<void> = previous
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        this.running = execution;
        return this.task();
      })
      .finally(() => {
        if (this.running === execution) this.running = undefined;
      });
    this.next = execution;
    return execution;
  }
}
