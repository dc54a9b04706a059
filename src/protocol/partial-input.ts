const EMPTY = Buffer.alloc(0);

/**
 * The bytes a streaming decoder received but could not use yet, kept from one read to the next. One type for
 * every framing decoder, so that each holds partial input the same way:
 *
 * - a unit (frame) of known size up to `fillLimit` is filled into a buffer of exactly that size, and what
 *   follows it in the read that completes it is left where it is (no copy);
 * - anything else (a cut header, a larger frame, a decoder told to stop early) waits as a list of chunks,
 *   joined once, when they hold the bytes decoding needs (no quadratic copying, and a peer cannot make us
 *   reserve a large buffer with a few header bytes).
 *
 * What `keep` keeps is always a copy: a view would pin the whole read buffer for as long as the unit stays
 * incomplete. `append` holds a whole chunk the caller owns (a socket read, never reused), for input that is
 * kept as read, such as a session's first bytes until it knows whether to front them.
 */
export class PartialInput {
  readonly fillLimit: number;
  #fill: Buffer | null = null;
  #filled = 0;
  #chunks: Buffer[] = [];
  #chunksLength = 0;
  /** Bytes the chunks must reach before decoding can progress (0: unknown, try with the next read). */
  #needed = 0;
  /**
   * After `take` returned input: how many bytes of its chunk that input includes. The rest of the chunk,
   * `chunk[used..]`, is the caller's to decode next.
   */
  used = 0;

  constructor(fillLimit: number) {
    this.fillLimit = fillLimit;
  }

  /** Bytes held. */
  get length(): number {
    return this.#fill ? this.#filled : this.#chunksLength;
  }

  /**
   * Keep `buf[off..]`, which decoding could not use. `unitSize`: the wire size of the unit starting at `off`
   * when it is known (else 0); `needed`: bytes needed from `off` before decoding can progress (0: unknown).
   */
  keep(buf: Buffer, off: number, unitSize: number, needed: number): void {
    if (unitSize > 0 && unitSize <= this.fillLimit) {
      this.#fill = Buffer.allocUnsafe(unitSize);
      this.#filled = buf.copy(this.#fill, 0, off);
    } else {
      const tail = Buffer.from(buf.subarray(off));
      this.#chunks.push(tail);
      this.#chunksLength = tail.length;
      this.#needed = needed;
    }
  }

  /**
   * Add the next read to what is held. Returns null while decoding still cannot progress (everything is
   * held), else the input to decode now: the completed unit (then `chunk[used..]` follows it), or everything
   * held joined with the chunk (then `used` is the chunk's length). Nothing is held afterwards.
   */
  take(chunk: Buffer): Buffer | null {
    const fill = this.#fill;
    if (fill) {
      const n = Math.min(fill.length - this.#filled, chunk.length);
      chunk.copy(fill, this.#filled, 0, n);
      this.#filled += n;
      this.used = n;
      if (this.#filled < fill.length) return null;
      this.#fill = null;
      this.#filled = 0;
      return fill;
    }
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#chunksLength += chunk.length;
    }
    this.used = chunk.length;
    if (this.#chunksLength < this.#needed) return null;
    return this.takeAll();
  }

  /** Hold all of `chunk`, not a copy (chunk list only; the caller never reuses it). */
  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#chunksLength += chunk.length;
  }

  /** Everything held, as one buffer, still held afterwards (the chunks are joined once, in place). */
  peekAll(): Buffer {
    if (this.#fill) return this.#fill.subarray(0, this.#filled);
    const chunks = this.#chunks;
    if (chunks.length === 1) return chunks[0];
    if (chunks.length === 0) return EMPTY;
    const all = Buffer.concat(chunks, this.#chunksLength);
    this.#chunks = [all];
    return all;
  }

  /** Everything held, as one buffer; nothing is held afterwards. */
  takeAll(): Buffer {
    let all: Buffer;
    if (this.#fill) all = this.#fill.subarray(0, this.#filled);
    else all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#chunksLength);
    this.#fill = null;
    this.#filled = 0;
    this.#chunks = [];
    this.#chunksLength = 0;
    this.#needed = 0;
    return all;
  }
}
