/**
 * Stop strings, checked on the decoded text so that a stop string split across several tokens
 * is still found. Text that could be the beginning of a stop string is held back from the
 * stream until it is known not to be one.
 */
export class StopMatcher {
  private readonly stops: string[];
  private readonly longest: number;
  private text = '';
  private emitted = 0;
  private stopped = false;

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
    this.longest = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  get hasStopped(): boolean {
    return this.stopped;
  }

  /** The text so far, cut before the stop string when one was found. */
  get fullText(): string {
    return this.text;
  }

  /**
   * Adds newly decoded text. Returns the text that is now safe to show and whether a stop
   * string ended the answer (the stop string itself is never shown or kept).
   */
  push(piece: string): { emit: string; stop: boolean } {
    if (this.stopped) return { emit: '', stop: true };
    const searchFrom = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, searchFrom);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.stopped = true;
      return { emit: this.take(this.text.length), stop: true };
    }
    return { emit: this.take(this.text.length - this.heldBack()), stop: false };
  }

  /** The text held back at the end of generation (it never became a stop string). */
  flush(): string {
    return this.take(this.text.length);
  }

  private take(upTo: number): string {
    if (upTo <= this.emitted) return '';
    const out = this.text.slice(this.emitted, upTo);
    this.emitted = upTo;
    return out;
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  private heldBack(): number {
    const max = Math.min(this.longest - 1, this.text.length);
    for (let n = max; n > 0; n--) {
      const tail = this.text.slice(this.text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
