/// The version of Coffre's daemons and CLI, as `coffre_build_info` and `--version` show it.
public enum CoffreVersion {
    public static let current = "0.10.0"
}
