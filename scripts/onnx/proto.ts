// A minimal protocol-buffers wire-format writer and reader: enough to write and inspect ONNX
// ModelProto files without a schema compiler. Only the wire types ONNX uses are supported.

const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

const textEncoder = new TextEncoder();

/** Builds one message. Nested messages are written by passing another ProtoWriter. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(1024);
  private used = 0;
  private chunksLength = 0;

  get length(): number {
    return this.chunksLength + this.used;
  }

  private ensure(n: number): void {
    if (this.used + n <= this.scratch.length) return;
    this.flushScratch();
    if (n > this.scratch.length) this.scratch = new Uint8Array(n);
  }

  private flushScratch(): void {
    if (this.used === 0) return;
    this.chunks.push(this.scratch.slice(0, this.used));
    this.chunksLength += this.used;
    this.used = 0;
  }

  private rawVarint(value: bigint | number): void {
    let v = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    while (v >= 0x80n) {
      this.scratch[this.used++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.scratch[this.used++] = Number(v);
  }

  private tag(field: number, wire: WireType): void {
    this.rawVarint((field << 3) | wire);
  }

  /** int32, int64, uint64, bool and enum fields (negative numbers use ten bytes, as protobuf does). */
  varint(field: number, value: bigint | number | boolean): this {
    this.tag(field, WireType.Varint);
    this.rawVarint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WireType.Fixed32);
    this.ensure(4);
    new DataView(this.scratch.buffer, this.scratch.byteOffset + this.used, 4).setFloat32(
      0,
      value,
      true,
    );
    this.used += 4;
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LengthDelimited);
    this.rawVarint(value.length);
    this.flushScratch();
    this.chunks.push(value);
    this.chunksLength += value.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  /** Packed repeated int64 (ONNX writes dims and ints this way). */
  packedVarints(field: number, values: readonly (bigint | number)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(v);
    return this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: readonly number[]): this {
    const buf = new Uint8Array(values.length * 4);
    const view = new DataView(buf.buffer);
    values.forEach((v, i) => view.setFloat32(i * 4, v, true));
    return this.bytes(field, buf);
  }

  finish(): Uint8Array {
    this.flushScratch();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.chunksLength);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    this.chunks = [out];
    return out;
  }
}

/** One decoded field: varints as bigint, length-delimited as bytes, fixed as raw bytes. */
export type ProtoField =
  | { field: number; wire: 0; value: bigint }
  | { field: number; wire: 2; value: Uint8Array }
  | { field: number; wire: 1 | 5; value: Uint8Array };

/** Splits one message into its fields, in file order. Throws on truncated or unknown wire types. */
export function readFields(buf: Uint8Array, what = 'message'): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error(`${what}: truncated varint at byte ${pos}`);
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error(`${what}: field ${field} runs past the end`);
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      if (pos + len > buf.length) throw new Error(`${what}: field ${field} runs past the end`);
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else throw new Error(`${what}: unsupported wire type ${wire} for field ${field}`);
  }
  return out;
}

/** Reads a packed (or single unpacked) repeated varint field's payload. */
export function readPackedVarints(bytes: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[pos++];
      if (b === undefined) throw new Error('packed varints: truncated');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    out.push(BigInt.asIntN(64, result));
  }
  return out;
}
