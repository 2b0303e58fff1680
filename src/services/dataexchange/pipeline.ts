/**
 * The reply pipeline of one data-exchange connection, free of I/O: inputs are admitted strictly in
 * order and one at a time (that is where per-frame decisions such as rate limits are taken), the
 * work an admission starts may finish in any order, and replies leave in input order. At most
 * `maxInFlight` inputs (and about `maxInFlightBytes`) wait for their reply; reading stops
 * meanwhile, and also while the transport's write buffer is full.
 */

export interface Admission {
  /** The reply text; may settle after later inputs' replies. Should not reject. */
  readonly reply: Promise<string>;
  /** The connection ends with this reply: later inputs are dropped. */
  readonly last?: boolean;
}

export interface PipelineIo<T> {
  /** Called in input order, never while a previous call is pending. Should not reject. */
  admit(input: T): Promise<Admission>;
  /** Bytes the input keeps in memory until its reply is sent. */
  sizeOf(input: T): number;
  /** Writes a reply (ending the connection when `last`); false when the write buffer is full. */
  send(reply: string, last: boolean): boolean;
  /** Every input has been answered after the end of input. */
  end(): void;
  /** An admission or reply rejected: the connection is broken. */
  fail(err: unknown): void;
  pause(): void;
  resume(): void;
}

export interface PipelineLimits {
  readonly maxInFlight: number;
  readonly maxInFlightBytes: number;
}

interface Slot {
  readonly bytes: number;
  reply: string | undefined;
  last: boolean;
}

export class OrderedReplies<T> {
  private readonly queue: T[] = [];
  /** Admitted inputs whose reply has not been sent, in input order. */
  private readonly window: Slot[] = [];
  private windowBytes = 0;
  private admitting = false;
  private inputEnded = false;
  /** An admission asked to end the connection: nothing later is admitted. */
  private closing = false;
  private stopped = false;
  private transportFull = false;
  private reading = true;

  constructor(
    private readonly io: PipelineIo<T>,
    private readonly limits: PipelineLimits,
  ) {}

  /** Replies awaited, including the one being admitted. */
  get inFlight(): number {
    return this.window.length;
  }

  push(inputs: Iterable<T>): void {
    if (this.stopped || this.closing) return;
    for (const input of inputs) this.queue.push(input);
    this.pump();
  }

  /** No more input will come: end once everything admitted is answered. */
  endOfInput(): void {
    this.inputEnded = true;
    this.pump();
  }

  /** The transport drained its write buffer. */
  writable(): void {
    this.transportFull = false;
    this.pump();
  }

  /** The connection is gone: drop what was not admitted and send nothing more. */
  abort(): void {
    this.stop();
  }

  private pump(): void {
    if (this.stopped) return;
    this.sendReady();
    if (this.stopped) return;
    this.admitNext();
    if (this.inputEnded && !this.closing && !this.admitting && this.queue.length === 0 && this.window.length === 0) {
      this.stop();
      this.io.end();
      return;
    }
    this.updateReading();
  }

  private admitNext(): void {
    if (this.admitting || this.closing) return;
    const input = this.queue[0];
    if (input === undefined) return;
    const bytes = this.io.sizeOf(input);
    if (!this.hasRoomFor(bytes)) return;
    this.queue.shift();
    this.admitting = true;
    // The slot is taken before admission so that the reply keeps the input's place.
    const slot: Slot = { bytes, reply: undefined, last: false };
    this.window.push(slot);
    this.windowBytes += bytes;
    this.io.admit(input).then(
      (admission) => {
        this.admitting = false;
        if (admission.last === true) {
          slot.last = true;
          this.closing = true;
          this.queue.length = 0;
        }
        admission.reply.then(
          (text) => {
            slot.reply = text;
            this.pump();
          },
          (err: unknown) => this.failWith(err),
        );
        this.pump();
      },
      (err: unknown) => this.failWith(err),
    );
  }

  private hasRoomFor(bytes: number): boolean {
    if (this.window.length === 0) return true;
    return this.window.length < this.limits.maxInFlight && this.windowBytes + bytes <= this.limits.maxInFlightBytes;
  }

  private sendReady(): void {
    for (let slot = this.window[0]; slot?.reply !== undefined && !this.stopped; slot = this.window[0]) {
      this.window.shift();
      this.windowBytes -= slot.bytes;
      if (!this.io.send(slot.reply, slot.last)) this.transportFull = true;
      if (slot.last) this.stop();
    }
  }

  private updateReading(): void {
    const wanted =
      !this.stopped &&
      !this.closing &&
      !this.transportFull &&
      this.queue.length === 0 &&
      this.window.length < this.limits.maxInFlight &&
      this.windowBytes < this.limits.maxInFlightBytes;
    if (wanted === this.reading) return;
    this.reading = wanted;
    if (wanted) this.io.resume();
    else this.io.pause();
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.length = 0;
    if (this.reading) {
      this.reading = false;
      this.io.pause();
    }
  }

  private failWith(err: unknown): void {
    if (this.stopped) return;
    this.stop();
    this.io.fail(err);
  }
}
