// A warm TypeScript compiler for the sandbox (coderanker/sandbox/warm.py): one node process
// compiles program after program with the compiler API, keeping the parsed standard library
// (lib.*.d.ts, most of a cold `tsc` run) between programs.
//
// Usage: node ts_server.js TYPESCRIPT_DIR. Protocol, on stdin and stdout: a request is one
// line, tsc's command-line arguments separated by NUL; the answer is a line
// "<exit code> <byte count>" and that many bytes of diagnostics, as tsc prints them (exit 0,
// or 2 when there are errors: tsc still writes the JavaScript, as on the command line).
"use strict";
const fs = require("fs");
const ts = require(process.argv[2]);

const libraries = new Map();  // file name -> SourceFile: the default library, parsed once
const libraryDiagnostics = new Map();  // options -> the default library's own diagnostics
const formatHost = {
  getCanonicalFileName: (name) => name,
  getCurrentDirectory: () => process.cwd(),
  getNewLine: () => "\n",
};

function compile(argv) {
  const parsed = ts.parseCommandLine(argv);
  if (parsed.errors.length) {
    return [1, ts.formatDiagnostics(parsed.errors, formatHost)];
  }
  const host = ts.createCompilerHost(parsed.options);
  const readSource = host.getSourceFile;
  const libDir = ts.getDirectoryPath(ts.getDefaultLibFilePath(parsed.options));
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (!fileName.startsWith(libDir)) {
      return readSource(fileName, languageVersion, onError, shouldCreate);
    }
    const key = fileName + "\0" + JSON.stringify(languageVersion);
    if (!libraries.has(key)) {
      libraries.set(key, readSource(fileName, languageVersion, onError, shouldCreate));
    }
    return libraries.get(key);
  };
  const program = ts.createProgram(parsed.fileNames, parsed.options, host);
  const own = program.getSourceFiles().filter((file) => !program.isSourceFileDefaultLibrary(file));
  // Emitting the program's own files, one by one: a whole-program emit would type-check the
  // default library again to build its emit resolver (most of the time of a warm compile).
  const emits = own.map((file) => program.emit(file));
  const emitted = {emitSkipped: emits.some((e) => e.emitSkipped), diagnostics: emits.flatMap((e) => e.diagnostics)};
  // The default library's own diagnostics (tsc checks it every time, most of a compile) are
  // the same for every program under the same options: computed once, then reused.
  const optionsKey = JSON.stringify(parsed.options);
  if (!libraryDiagnostics.has(optionsKey)) {
    libraryDiagnostics.set(optionsKey, program.getSourceFiles()
      .filter((file) => program.isSourceFileDefaultLibrary(file))
      .flatMap((file) => ts.getPreEmitDiagnostics(program, file)));
  }
  const diagnostics = ts.sortAndDeduplicateDiagnostics([
    ...program.getConfigFileParsingDiagnostics(), ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(), ...libraryDiagnostics.get(optionsKey),
    ...own.flatMap((file) => ts.getPreEmitDiagnostics(program, file)), ...emitted.diagnostics]);
  const errors = diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error);
  return [errors ? (emitted.emitSkipped ? 1 : 2) : 0, ts.formatDiagnostics(diagnostics, formatHost)];
}

let pending = Buffer.alloc(0);
process.stdin.on("data", (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  let end;
  while ((end = pending.indexOf(10)) >= 0) {
    const line = pending.subarray(0, end).toString("utf8");
    pending = pending.subarray(end + 1);
    let code, text;
    try {
      [code, text] = compile(line.split("\0"));
    } catch (error) {  // a compiler crash: answer, then leave (the host starts afresh)
      [code, text] = [4, String(error && error.stack || error)];
    }
    const body = Buffer.from(text, "utf8");
    fs.writeSync(1, `${code} ${body.length}\n`);
    fs.writeSync(1, body);
    if (code >= 3) {
      process.exit(code);
    }
  }
});
