import type { Migration } from '../db.ts';

/**
 * Playground.
 * - `conversations` by id: a chat or prompt session (messages, settings, the run it is logged
 *   to), indexed by last update (the sidebar lists newest first) and by run id ("Open in
 *   Playground" from a run finds its conversation).
 * - `evalProjects` by id: prompt-evaluation projects (an MLproject and its dataset files, small
 *   text kept in the record), indexed by last update.
 */
export const playground: Migration = {
  description: 'playground conversations and prompt-evaluation projects',
  up(db) {
    const conversations = db.createObjectStore('conversations', { keyPath: 'id' });
    conversations.createIndex('updatedAt', 'updatedAt');
    conversations.createIndex('runId', 'runId');

    const projects = db.createObjectStore('evalProjects', { keyPath: 'id' });
    projects.createIndex('updatedAt', 'updatedAt');
  },
};
