// Whose jobs a client command reads (list, top, stats): --user NAME or --all, one meaning in every command.
import { type Command, Option } from "commander";

/** The flags addScopeOptions adds, as commander parses them. */
export interface ScopeFlags {
  user?: string;
  all?: boolean;
}

/**
 * Adds --user and --all: without either, the caller's own jobs (also for an admin); --user NAME that
 * user's (another user's needs an admin token); --all every user's (needs an admin token). The server's
 * one scope rule (JobService in the contract), so list, top and stats show the same jobs.
 */
export function addScopeOptions(command: Command): Command {
  return command
    .addOption(new Option("--user <name>", "only this user's jobs (another user's needs an admin token)"))
    .addOption(new Option("--all", "every user's jobs (needs an admin token)").conflicts("user"));
}

/** The scope of the request: username and allUsers as the client library takes them. */
export function scopeFromFlags(flags: ScopeFlags): { username?: string; allUsers?: boolean } {
  return {
    ...(flags.user === undefined ? {} : { username: flags.user }),
    ...(flags.all ? { allUsers: true } : {}),
  };
}

/** The help line of the scope, for a command's description. */
export const SCOPE_HELP =
  "\nWhose jobs: your own by default (an admin too); --user NAME one user's, --all every user's (admin token).";
