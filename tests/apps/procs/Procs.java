import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/** Processes from Java: ProcessBuilder with output read to the end, exit values, piped stdin. */
public class Procs {
    static String readAll(InputStream in) throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        in.transferTo(b);
        return b.toString(StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        Process p = new ProcessBuilder("echo", "hi").start();
        String out = readAll(p.getInputStream());
        System.out.println("echo: [" + out.trim() + "] exit " + p.waitFor());

        p = new ProcessBuilder("/bin/sh", "-c", "exit 3").start();
        System.out.println("sh exit: " + p.waitFor());

        p = new ProcessBuilder("/bin/sh", "-c", "tr a-z A-Z").redirectErrorStream(true).start();
        try (OutputStream o = p.getOutputStream()) {
            o.write("through a pipe\n".getBytes(StandardCharsets.UTF_8));
        }
        System.out.println("tr: [" + readAll(p.getInputStream()).trim() + "] exit " + p.waitFor());
    }
}
