// The saved remote servers as shared UI state: the list lives in localStorage (through the sync
// service); this only mirrors it so every component sees additions and removals at once.
import {
  listRemoteServers,
  removeRemoteServer,
  saveRemoteServer,
  type RemoteServer,
} from '../../../lib/services/sync.ts';

class RemoteServers {
  list = $state<RemoteServer[]>(listRemoteServers());

  save(input: { id?: string; name?: string; url: string; token?: string }): RemoteServer {
    const s = saveRemoteServer(input);
    this.list = listRemoteServers();
    return s;
  }

  remove(id: string): void {
    removeRemoteServer(id);
    this.list = listRemoteServers();
  }
}

export const remoteServers = new RemoteServers();

/** "CODE: message" for MLflow errors, the message otherwise. */
export function describeError(e: unknown): string {
  if (e && typeof e === 'object' && 'errorCode' in e && 'serverMessage' in e) {
    const x = e as { errorCode: string; serverMessage: string };
    return `${x.errorCode}: ${x.serverMessage}`;
  }
  return e instanceof Error ? e.message : String(e);
}
