// A warm javac for the sandbox (coderanker/sandbox/warm.py): one JVM compiles program after
// program with the JDK's own compiler (javax.tools), so each compile skips the JVM start and
// the JIT warm-up that dominate a cold `javac` of a small program. One file manager serves
// every compile (the platform classes and the class path are opened once).
//
// Protocol, on stdin and stdout: a request is one line, the javac arguments separated by NUL;
// the answer is a line "<exit code> <byte count>" followed by that many bytes of diagnostics.
// Exit codes are javac's (0 ok, 1 errors, 2 bad arguments, 3 system error, 4 abnormal).

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

public final class CompileServer {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        StandardJavaFileManager files = javac.getStandardFileManager(null, null, StandardCharsets.UTF_8);
        BufferedReader requests = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        OutputStream answers = new FileOutputStream(FileDescriptor.out);
        String line;
        while ((line = requests.readLine()) != null) {
            ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
            int code;
            try {
                List<String> options = new ArrayList<>();
                List<String> sources = new ArrayList<>();
                for (String arg : line.split("\u0000")) {
                    (arg.endsWith(".java") ? sources : options).add(arg);
                }
                PrintWriter out = new PrintWriter(new OutputStreamWriter(diagnostics, StandardCharsets.UTF_8), true);
                boolean ok = javac.getTask(out, files, null, options, null,
                        files.getJavaFileObjectsFromStrings(sources)).call();
                out.flush();
                files.flush();
                code = ok ? 0 : 1;
            } catch (Throwable error) {  // out of memory, a compiler crash: the host starts afresh
                diagnostics.write(error.toString().getBytes(StandardCharsets.UTF_8));
                code = 4;
            }
            byte[] body = diagnostics.toByteArray();
            answers.write((code + " " + body.length + "\n").getBytes(StandardCharsets.US_ASCII));
            answers.write(body);
            answers.flush();
            if (code >= 3) {
                System.exit(code);
            }
        }
    }
}
