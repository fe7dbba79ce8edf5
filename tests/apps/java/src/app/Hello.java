package app;

/** Hello, run with -cp and as the Main-Class of a jar built by the test. */
public class Hello {
    public static void main(String[] args) {
        System.out.println("Hello from Java " + Runtime.version().feature());
        System.out.println("args " + String.join(",", args));
        System.out.println("processors>0 " + (Runtime.getRuntime().availableProcessors() > 0));
        String res = Hello.class.getResource("/app/message.txt") != null ? "resource found" : "no resource";
        System.out.println(res);
    }
}
