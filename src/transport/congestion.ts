/**
 * NewReno-style AIMD: slow start, congestion avoidance by byte counting, one multiplicative
 * decrease per loss episode, loss window after a timeout, and undo when a loss episode
 * turns out to have been reordering.
 */
export class NewReno {
  cwnd: number;
  ssthresh: number;
  private saved: { cwnd: number; ssthresh: number } | undefined;

  constructor(
    private mss: number,
    initialCwnd: number,
    private readonly maxCwnd: number,
  ) {
    this.cwnd = initialCwnd;
    this.ssthresh = maxCwnd;
  }

  /**
   * A new segment size. Before any loss the window is raised to the initial window of the new
   * size (10 segments), as if the connection had started with it.
   */
  setMss(mss: number): void {
    this.mss = mss;
    if (this.ssthresh === this.maxCwnd) this.cwnd = Math.max(this.cwnd, Math.min(10 * mss, this.maxCwnd));
  }

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /** New data acknowledged outside recovery. */
  onAck(ackedBytes: number, cwndLimited: boolean): void {
    if (!cwndLimited || ackedBytes <= 0) return;
    if (this.inSlowStart) this.cwnd += Math.min(ackedBytes, 2 * this.mss);
    else this.cwnd += Math.max(1, Math.floor((this.mss * ackedBytes) / this.cwnd));
    this.cwnd = Math.min(this.cwnd, this.maxCwnd);
  }

  /** Loss detected by SACK/RACK: halve once per episode. */
  onLossEpisode(pipe: number): void {
    this.saved = { cwnd: this.cwnd, ssthresh: this.ssthresh };
    this.ssthresh = Math.max(Math.floor(Math.max(pipe, this.cwnd) / 2), 2 * this.mss);
    this.cwnd = this.ssthresh;
  }

  /** Retransmission timeout: restart from one segment. */
  onTimeout(pipe: number, newEpisode: boolean): void {
    if (newEpisode) {
      this.saved = { cwnd: this.cwnd, ssthresh: this.ssthresh };
      this.ssthresh = Math.max(Math.floor(Math.max(pipe, this.cwnd) / 2), 2 * this.mss);
    }
    this.cwnd = this.mss;
  }

  /** The last reduction was caused by reordering, not loss: restore the window. */
  undo(): void {
    if (!this.saved) return;
    this.cwnd = Math.max(this.cwnd, this.saved.cwnd);
    this.ssthresh = Math.max(this.ssthresh, this.saved.ssthresh);
    this.saved = undefined;
  }

  forgetUndo(): void {
    this.saved = undefined;
  }
}
