import { InvalidArgumentError, V6Error } from "../errors.js";

/** One mistake in the configuration: the field it is in and what is wrong with it. */
export interface ConfigProblem {
  field: string;
  message: string;
}

/**
 * Every mistake of a configuration file at once (issue 19): an operator fixing a host should
 * not learn of the second mistake only after fixing the first. The message is the one problem's
 * `field: message` when there is one, else a line per problem under a count.
 */
export class ConfigError extends V6Error {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], source?: string) {
    const [first] = problems;
    if (first === undefined) throw new V6Error("internal", "ConfigError needs at least one problem");
    const where = source === undefined ? "" : ` in ${source}`;
    const message =
      problems.length === 1
        ? `${first.field}: ${first.message}`
        : [`${problems.length} problems${where}:`, ...problems.map((problem) => `  ${problem.field}: ${problem.message}`)].join("\n");
    super("invalid_argument", message, { field: first.field });
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Collects problems while a configuration is parsed; each field's parser runs even after others failed. */
export class ConfigProblems {
  readonly list: ConfigProblem[] = [];

  add(field: string, message: string): void {
    this.list.push({ field, message });
  }

  /** Runs one field's parser: its InvalidArgumentError becomes a problem and the value undefined. */
  field<T>(parse: () => T): T | undefined {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      const field = error.field ?? "(config)";
      const prefix = `${field}: `;
      this.add(field, error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message);
      return undefined;
    }
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Throws every problem found so far as one ConfigError. */
  throwIfAny(source?: string): void {
    if (this.list.length > 0) throw new ConfigError(this.list, source);
  }
}
