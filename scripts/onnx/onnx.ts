// Builds ONNX ModelProto bytes (ONNX IR 8) from a small in-memory description. Large tensors go to
// an external-data file as they are produced, so a multi-GB model never sits in memory at once.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ProtoWriter } from './proto.ts';

/** TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataTypeCode;
  dims: Dim[];
}

export type AttributeValue =
  | { kind: 'int'; value: number | bigint }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: (number | bigint)[] };

export interface NodeSpec {
  opType: string;
  domain?: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export const int = (value: number | bigint): AttributeValue => ({ kind: 'int', value });
export const float = (value: number): AttributeValue => ({ kind: 'float', value });
export const ints = (value: (number | bigint)[]): AttributeValue => ({ kind: 'ints', value });
export const str = (value: string): AttributeValue => ({ kind: 'string', value });

interface Initializer {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

/**
 * Appends tensor bytes to external-data files, each tensor aligned for memory mapping. With a
 * chunk limit it starts a new file (named by `chunkName(i)`) when the next tensor would not fit:
 * transformers.js fetches `<model>.onnx_data`, `<model>.onnx_data_1`, ... for web models over 2 GB.
 */
export class ExternalDataFile {
  private fd: number;
  private offset = 0;
  private chunk = 0;
  private static readonly ALIGN = 4096;
  readonly locations: string[] = [];

  constructor(
    private readonly dir: string,
    private readonly chunkName: (index: number) => string,
    private readonly maxChunkBytes = Number.POSITIVE_INFINITY,
  ) {
    this.fd = this.open(0);
  }

  private open(index: number): number {
    const name = this.chunkName(index);
    this.locations.push(name);
    return openSync(join(this.dir, name), 'w');
  }

  /** Writes one tensor of `byteLength` bytes produced in pieces; returns where it landed. */
  append(
    byteLength: number,
    produce: (write: (bytes: Uint8Array) => void) => void,
  ): { location: string; offset: number; length: number } {
    const align = ExternalDataFile.ALIGN;
    let pad = (align - (this.offset % align)) % align;
    if (this.offset > 0 && this.offset + pad + byteLength > this.maxChunkBytes) {
      closeSync(this.fd);
      this.fd = this.open(++this.chunk);
      this.offset = 0;
      pad = 0;
    }
    if (pad > 0) {
      writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    const start = this.offset;
    produce((bytes) => {
      let done = 0;
      while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
      this.offset += bytes.length;
    });
    if (this.offset - start !== byteLength)
      throw new Error(`tensor wrote ${this.offset - start} bytes, expected ${byteLength}`);
    return { location: this.locations[this.chunk]!, offset: start, length: byteLength };
  }

  close(): void {
    closeSync(this.fd);
  }
}

const BYTES_PER_ELEMENT: Record<DataTypeCode, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
};

export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();

  constructor(
    readonly name: string,
    private readonly external: ExternalDataFile | null,
  ) {}

  node(spec: NodeSpec): string[] {
    this.nodes.push(spec);
    return spec.outputs;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`initializer ${name} defined twice`);
    this.names.add(name);
  }

  /** A tensor stored inside the .onnx file (small constants; ORT wants int64 shapes inline). */
  inline(name: string, dataType: DataTypeCode, dims: number[], raw: Uint8Array): string {
    this.claim(name);
    this.initializers.push({ name, dataType, dims, raw });
    return name;
  }

  /** A tensor written to the external-data file now; only its location stays in memory. */
  big(
    name: string,
    dataType: DataTypeCode,
    dims: number[],
    produce: (write: (bytes: Uint8Array) => void) => void,
  ): string {
    if (!this.external) throw new Error(`no external-data file for ${name}`);
    this.claim(name);
    const byteLength = dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[dataType];
    const external = this.external.append(byteLength, produce);
    this.initializers.push({ name, dataType, dims, external });
    return name;
  }

  int64(name: string, values: (number | bigint)[], dims: number[] = [values.length]): string {
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.inline(name, DataType.INT64, dims, new Uint8Array(arr.buffer));
  }

  toBytes(opset: { domain: string; version: number }[], producer: string): Uint8Array {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, encodeNode(n));
    graph.string(2, this.name);
    for (const init of this.initializers) graph.message(5, encodeInitializer(init));
    for (const v of this.inputs) graph.message(11, encodeValueInfo(v));
    for (const v of this.outputs) graph.message(12, encodeValueInfo(v));

    const model = new ProtoWriter();
    model.varint(1, 8); // ir_version
    model.string(2, producer);
    model.string(3, '1');
    model.message(7, graph);
    for (const o of opset)
      model.message(8, new ProtoWriter().string(1, o.domain).varint(2, o.version));
    return model.finish();
  }
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, attr] of Object.entries(n.attributes ?? {})) {
    const a = new ProtoWriter().string(1, name);
    switch (attr.kind) {
      case 'float':
        a.float(2, attr.value).varint(20, 1);
        break;
      case 'int':
        a.varint(3, attr.value).varint(20, 2);
        break;
      case 'string':
        a.string(4, attr.value).varint(20, 3);
        break;
      case 'ints':
        a.packedVarints(8, attr.value).varint(20, 7);
        break;
    }
    w.message(5, a);
  }
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeInitializer(t: Initializer): ProtoWriter {
  const w = new ProtoWriter();
  if (t.dims.length > 0) w.packedVarints(1, t.dims);
  w.varint(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    w.message(13, entry('location', t.external.location));
    w.message(13, entry('offset', String(t.external.offset)));
    w.message(13, entry('length', String(t.external.length)));
    w.varint(14, 1); // data_location = EXTERNAL
  }
  return w;
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.varint(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().varint(1, v.elemType).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}
