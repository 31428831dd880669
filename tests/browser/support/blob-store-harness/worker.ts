// Worker side of the blob store harness: runs one op per message.
import { ops, type OpArgs, type OpName } from './ops.ts';

self.onmessage = async (e: MessageEvent<{ op: OpName; args: OpArgs }>) => {
  self.postMessage(await ops[e.data.op](e.data.args));
};
