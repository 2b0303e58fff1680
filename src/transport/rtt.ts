import type { Millis } from './types.js';

/** RTT estimator and retransmission timeout per RFC 6298. */
export class RttEstimator {
  srtt = 0;
  rttvar = 0;
  minRtt = Number.POSITIVE_INFINITY;
  private hasSample = false;
  private backoff = 1;

  constructor(
    private readonly initialRto: Millis,
    private readonly minRto: Millis,
    private readonly maxRto: Millis,
  ) {}

  get sampled(): boolean {
    return this.hasSample;
  }

  sample(rtt: Millis): void {
    const r = Math.max(rtt, 0.001);
    if (r < this.minRtt) this.minRtt = r;
    if (!this.hasSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasSample = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.backoff = 1;
  }

  /** The current timeout, including exponential back-off. */
  get rto(): Millis {
    const base = this.hasSample ? this.srtt + Math.max(10, 4 * this.rttvar) : this.initialRto;
    return Math.min(Math.max(base, this.minRto) * this.backoff, this.maxRto);
  }

  backOff(): void {
    if (this.rto < this.maxRto) this.backoff *= 2;
  }

  resetBackoff(): void {
    this.backoff = 1;
  }
}
