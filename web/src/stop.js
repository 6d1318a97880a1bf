// stop: stop strings over a stream of UTF-8 bytes. StopScanner holds back
// the bytes that might begin a stop string, releases the rest, and says when
// one has appeared, so that text is never shown and then taken back.

const utf8 = new TextEncoder();

/** StopScanner finds the first of several stop strings in bytes pushed piece by piece. */
export class StopScanner {
  /** @param {string[]} stops  non-empty strings; the generation ends before the first that appears */
  constructor(stops) {
    this.stops = stops.filter((s) => s !== '').map((s) => utf8.encode(s));
    this.text = new Uint8Array(0);
    this.released = 0; // bytes of text handed out so far
  }

  /**
   * push appends bytes and returns {out, stopped}: out, the bytes now safe to
   * show (none of them part of a stop string), and whether a stop string has
   * appeared (out then ends just before it).
   */
  push(bytes) {
    const text = new Uint8Array(this.text.length + bytes.length);
    text.set(this.text);
    text.set(bytes, this.text.length);
    this.text = text;
    // An occurrence cannot start before `released`: its beginning would
    // have been held back as a possible prefix.
    let cut = -1;
    for (const stop of this.stops) {
      const at = indexOf(text, stop, this.released);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) return { out: this.release(cut), stopped: true };
    let hold = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, text.length - this.released); k > hold; k--) {
        if (startsWithAt(text, text.length - k, stop, k)) {
          hold = k;
          break;
        }
      }
    }
    return { out: this.release(text.length - hold), stopped: false };
  }

  /** flush releases what is still held back (the generation ended without a stop string). */
  flush() { return this.release(this.text.length); }

  release(end) {
    const out = this.text.slice(this.released, Math.max(this.released, end));
    this.released = Math.max(this.released, end);
    return out;
  }
}

function indexOf(hay, needle, from) {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// startsWithAt reports whether hay[at, at+k) equals needle[0, k).
function startsWithAt(hay, at, needle, k) {
  for (let j = 0; j < k; j++) if (hay[at + j] !== needle[j]) return false;
  return true;
}
