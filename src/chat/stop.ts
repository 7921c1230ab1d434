/**
 * Finds stop strings in streamed text. Text that could still turn into a stop string is held
 * back until it cannot, so a stop string never reaches the caller even split across tokens.
 */
export class StopMatcher {
  private held = '';
  constructor(private readonly stops: string[]) {}

  /** Returns text safe to emit, and whether a stop string ended it. */
  push(text: string): { text: string; stopped: boolean } {
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const out = this.held.slice(0, cut);
      this.held = '';
      return { text: out, stopped: true };
    }
    // Keep the longest tail that is a prefix of some stop string.
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.held.length); k > keep; k--) {
        if (this.held.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { text: out, stopped: false };
  }

  /** The held-back tail, once generation ends without a stop. */
  flush(): string {
    const out = this.held;
    this.held = '';
    return out;
  }
}
