// Wakes the readers that follow the log: each commit, the close and the failure settle one promise
// that every waiting reader shares, and a new one takes its place. A follower therefore waits on no
// timer and polls nothing, and a thousand of them cost one promise between commits.
export class CommitSignal {
  private settle!: () => void
  private pending: Promise<void> = this.renew()

  private renew (): Promise<void> {
    return new Promise<void>(resolve => { this.settle = resolve })
  }

  /** Resolves at the next notify(). Take it before looking at the log, so that no notify is missed. */
  next (): Promise<void> {
    return this.pending
  }

  /** Something a follower waits for happened: records became durable, or the log closed or failed. */
  notify (): void {
    const settle = this.settle
    this.pending = this.renew()
    settle()
  }
}
