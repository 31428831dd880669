/**
 * The app's service instances, created once per page over the one shared database.
 * UI code asks for a service here instead of opening IndexedDB itself.
 */
import { getDatabase } from '../store/db.ts';
import { TrackingClient } from './tracking.ts';
import { RegistryClient } from './registry.ts';

let tracking: Promise<TrackingClient> | undefined;

/** The tracking client of this page (the database is opened on first use). */
export function getTracking(): Promise<TrackingClient> {
  tracking ??= getDatabase().then((db) => new TrackingClient(db));
  tracking.catch(() => (tracking = undefined));
  return tracking;
}

let registry: Promise<RegistryClient> | undefined;

/** The model registry client of this page (same database, opened on first use). */
export function getRegistry(): Promise<RegistryClient> {
  registry ??= getDatabase().then((db) => new RegistryClient(db));
  registry.catch(() => (registry = undefined));
  return registry;
}

if (typeof addEventListener === 'function') {
  // Another tab upgraded the schema and our connection was closed: reopen on next use.
  addEventListener('tabflow:db-upgrade', () => (tracking = undefined));
  addEventListener('tabflow:db-upgrade', () => (registry = undefined));
}

/**
 * Browser tests drive the services through this hook, which exists only when the page was opened
 * with `?test` in its URL (or in a development build). Production pages never have it.
 */
if (
  typeof location !== 'undefined' &&
  (import.meta.env.MODE !== 'production' || new URLSearchParams(location.search).has('test'))
) {
  (globalThis as unknown as { tabflowTest?: unknown }).tabflowTest = { getTracking, getRegistry };
}
