//! The command line: clap types and the parsers of flag values.
//!
//! Kept apart from the API types in `cer_proto::api` so flags can change
//! without changing the interface. Every flag value goes through
//! cer-proto's own parser, so a bad value is a usage error that says what
//! is valid, exactly as the daemon would say it.

use std::path::PathBuf;
use std::time::Duration;

use cer_proto::model::{
    normalize_tag, Classification, CountryCode, Indicator, IndicatorType, Severity, Status,
    Timestamp, Tlp,
};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

/// Default API socket, relative to where cerctl runs: where `cerd run`
/// puts it when started in the same directory without a config file.
pub const DEFAULT_SOCKET: &str = "./cerd-data/cerd.sock";

/// A `--timeout`: a humantime duration, more than zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 500ms, 10s, 2m)")),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "cerctl",
    version,
    about = "The CERT analyst's command line for cerd: file, update, query and export incidents",
    after_help = "Exit status: 0 ok; 1 not found or refused by cerd; 2 usage error, cerd unreachable or other error."
)]
pub struct Cli {
    /// cerd's API socket.
    #[arg(long, global = true, env = "CERD_SOCKET", value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// How long to wait for cerd: to connect, and for each request's
    /// answer (e.g. 500ms, 10s, 2m).
    #[arg(long, global = true, env = "CERCTL_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Print the API response as JSON instead of tables. Errors are then
    /// printed to stdout too, as the API's error body:
    /// {"error": {"code", "message", "fields"}}.
    #[arg(long, global = true)]
    pub json: bool,

    /// Show full ids, fingerprints and titles in tables, however wide
    /// (by default tables fit 100 columns).
    #[arg(long, global = true)]
    pub wide: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show this node's identity, store and mesh counters.
    Status,
    /// Check that the node is serving: its store takes a write, a peer is
    /// connected (when peers are configured), no playbook keeps failing.
    /// Prints one line; exits 0 when healthy, 1 otherwise (also when cerd
    /// does not answer), for monitoring systems.
    Health,
    /// File, list, show, update and retract incidents.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Indicators of compromise: search, report sightings, bulk import.
    #[command(subcommand)]
    Ioc(IocCommand),
    /// Back up the node while it runs: every envelope with its signature,
    /// this node's annotations, playbook run history and cursors, and the
    /// certificates it trusts. `cerd restore FILE` rebuilds a node from it.
    Backup(BackupArgs),
    /// Export: the signed envelopes (`gpg --verify ID.sig ID.json`), or
    /// a STIX 2.1 bundle, MISP events, a MISP feed or CSV.
    Export(ExportArgs),
    /// Import a STIX 2.1 bundle, a MISP event or feed folder, a CSV or a
    /// list of values: each incident is filed (signed by this node) with
    /// its source recorded; importing the same source again updates it.
    Import(ImportArgs),
    /// Show the mesh peers and their sync counters.
    Peers,
    /// Show the trust store.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The TAXII server's and feeds' clients.
    #[command(subcommand)]
    Taxii(TaxiiCommand),
    /// Automation: loaded playbooks, checks, dry runs and run history.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// Print a shell completion script, e.g.
    /// `cerctl completions bash > /etc/bash_completion.d/cerctl`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print cerctl's man page (roff), e.g. `cerctl man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Playbooks in force, and files refused (their previous version stays active).
    List,
    /// Validate a playbook file; every problem with its line and column.
    Check {
        /// The playbook file (YAML).
        file: std::path::PathBuf,
    },
    /// Show what a playbook would run for an incident, without running it:
    /// one the node holds (--incident), or one described in a file
    /// (--fixture; no node needed).
    Test {
        /// The playbook file (YAML).
        file: std::path::PathBuf,
        /// The incident to try it on (full id), asking the node.
        #[arg(long, value_name = "ID", required_unless_present = "fixture")]
        incident: Option<Uuid>,
        /// An incident described in a YAML file (see
        /// playbooks/fixtures/), planned here without a node.
        #[arg(long, value_name = "FILE", conflicts_with = "incident")]
        fixture: Option<std::path::PathBuf>,
        /// The event to simulate (default: the playbook's first incident event).
        #[arg(long)]
        event: Option<String>,
        /// Really run its exec and webhook actions once against the
        /// incident (tags and notes are not applied), recorded as a test run.
        #[arg(long)]
        run: bool,
        /// Print only the JSON the actions would read on standard input
        /// (and webhooks get as their body), e.g. to pipe into a script.
        #[arg(long, requires = "fixture")]
        show_input: bool,
    },
    /// What ran, when, its tries with their exit or HTTP status, duration
    /// and the first line of output (`-v`: every try and the first lines).
    Runs {
        /// Only runs for this incident (full id).
        #[arg(long, value_name = "ID")]
        incident: Option<Uuid>,
        /// Only runs of the playbook with this name.
        #[arg(long, value_name = "NAME")]
        playbook: Option<String>,
        /// At most this many runs, most recent first.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Each run in full: its key, every try with its status and
        /// duration, and the first lines of its output.
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Resume a playbook that a limit paused; the events held meanwhile run now.
    Resume {
        /// The playbook's name.
        name: String,
        /// Drop the held events instead of running them.
        #[arg(long)]
        discard: bool,
    },
    /// What a playbook did per indicator and has not taken back (kept on this node only).
    Acted {
        /// The playbook's name.
        name: String,
        /// Only for this incident (full id).
        #[arg(long, value_name = "ID")]
        incident: Option<Uuid>,
    },
    /// Drop this node's record of what a playbook did; a later retraction
    /// then has nothing to undo, and updates act again on every indicator.
    Forget {
        /// The playbook's name.
        name: String,
        /// Only for this incident (full id); default: every incident.
        #[arg(long, value_name = "ID")]
        incident: Option<Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// File a new incident; prints its id.
    File(FileArgs),
    /// List incidents, most recently updated first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show an incident: fields, indicators, timeline and signatures.
    Show(ShowArgs),
    /// Change an incident, add a note or indicators; prints the envelope id.
    Update(UpdateArgs),
    /// Withdraw an incident you filed, everywhere it went.
    Retract(RetractArgs),
    /// Send the incident's author a signed receipt (received, actioned, resolved).
    Ack(AckArgs),
}

/// The content flags, all refused together with `--from`: a file is the
/// whole incident, and mixing the two would leave unclear which wins.
const CONTENT_FLAGS: [&str; 14] = [
    "title",
    "severity",
    "tlp",
    "class",
    "description",
    "status",
    "ioc",
    "tag",
    "country",
    "sector",
    "to",
    "occurred",
    "detected",
    "valid_until",
];

#[derive(Debug, Args)]
pub struct FileArgs {
    /// Read the whole incident from a YAML or JSON file (`-` for stdin)
    /// instead of flags. Fields: title, description, severity, tlp,
    /// classification, status, indicators, affected, occurred, detected,
    /// tags, to.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = CONTENT_FLAGS)]
    pub from: Option<PathBuf>,

    /// An id for this filing, chosen by you (a UUID). Running the same
    /// command again with the same id, after an error or a lost answer,
    /// returns the incident already filed instead of filing it twice.
    /// Without it, cerctl picks one and retries a lost answer by itself.
    #[arg(long, value_name = "UUID")]
    pub request_id: Option<uuid::Uuid>,

    /// One-line title.
    #[arg(long, required_unless_present = "from")]
    pub title: Option<String>,

    /// low, medium, high or critical.
    #[arg(long, required_unless_present = "from")]
    pub severity: Option<Severity>,

    /// TLP 2.0 label: clear, green, amber, amber+strict or red.
    #[arg(long, required_unless_present = "from")]
    pub tlp: Option<Tlp>,

    /// RSIT classification, `class/type`, e.g. malicious-code/c2-server.
    #[arg(long, value_name = "CLASS/TYPE", required_unless_present = "from", value_parser = Classification::parse)]
    pub class: Option<Classification>,

    /// Free text: what happened, what is known, what to do.
    #[arg(long)]
    pub description: Option<String>,

    /// new (default), open, contained, resolved or closed.
    #[arg(long)]
    pub status: Option<Status>,

    /// An indicator as type:value, e.g. ipv4:203.0.113.7 (repeatable).
    /// Types: ipv4, ipv6, cidr, domain, url, email, md5, sha1, sha256, sha512,
    /// asn, cve, filename.
    #[arg(long, value_name = "TYPE:VALUE", value_parser = Indicator::parse_spec)]
    pub ioc: Vec<Indicator>,

    /// Refuse indicators on one of the node's warninglists (private,
    /// documentation or resolver addresses…) instead of warning.
    #[arg(long)]
    pub strict: bool,

    /// Until when the indicators given with --ioc stay active, RFC 3339
    /// (default: this node's lifetime for their type, see [expiry] in
    /// cerd.toml).
    #[arg(long, value_name = "TIME", requires = "ioc", value_parser = cer_proto::model::Timestamp::parse)]
    pub valid_until: Option<cer_proto::model::Timestamp>,

    /// A tag (repeatable).
    #[arg(long, value_parser = normalize_tag)]
    pub tag: Vec<String>,

    /// An affected country, ISO 3166 alpha-2 (repeatable).
    #[arg(long, value_name = "CC")]
    pub country: Vec<CountryCode>,

    /// An affected sector, e.g. energy (repeatable).
    #[arg(long, value_parser = normalize_tag)]
    pub sector: Vec<String>,

    /// A recipient CERT, by name or fingerprint (repeatable; TLP:RED needs
    /// at least one, TLP:AMBER defaults to every trusted CERT).
    #[arg(long, value_name = "NAME|FPR")]
    pub to: Vec<String>,

    /// When the incident happened (RFC 3339, e.g. 2026-11-28T13:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub occurred: Option<Timestamp>,

    /// When it was detected (RFC 3339, e.g. 2026-11-28T13:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub detected: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only incidents changed since a time: a duration back from now
    /// (`30m`, `24h`, `7d`), a date (`2026-11-30`, from midnight UTC) or
    /// an RFC 3339 timestamp.
    #[arg(long, value_name = "DURATION|DATE|TIME", value_parser = parse_since)]
    pub since: Option<Since>,

    /// Only incidents at least this severe: low, medium, high or critical.
    #[arg(long, value_name = "SEVERITY")]
    pub severity_at_least: Option<Severity>,

    /// Only incidents with this TLP label: clear, green, amber,
    /// amber+strict or red.
    #[arg(long)]
    pub tlp: Option<Tlp>,

    /// Only incidents in this status: new, open, contained, resolved or
    /// closed.
    #[arg(long)]
    pub status: Option<Status>,

    /// `class/type`, or `class/*` for a whole class.
    #[arg(long, value_name = "CLASS/TYPE", value_parser = parse_class_pattern)]
    pub class: Option<String>,

    /// The reporting CERT, by name or fingerprint.
    #[arg(long, value_name = "NAME|FPR")]
    pub from: Option<String>,

    /// At most this many incidents (the daemon's default is 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=cer_proto::api::MAX_LIST_LIMIT as i64))]
    pub limit: Option<u32>,

    /// Include retracted incidents.
    #[arg(long)]
    pub all: bool,

    /// Only incidents changed before a time: a duration back from now, a
    /// date or an RFC 3339 timestamp (as for --since).
    #[arg(long, value_name = "DURATION|DATE|TIME", value_parser = parse_since)]
    pub until: Option<Since>,

    /// Skip this many matching incidents: the next page starts at the
    /// last page's --offset plus its --limit.
    #[arg(long, value_name = "N")]
    pub offset: Option<usize>,

    /// Oldest change first (default: newest first).
    #[arg(long)]
    pub oldest_first: bool,

    /// Only incidents whose title or description holds every one of these
    /// words (case-insensitive; parts of words match too), among those
    /// this node can read.
    #[arg(long, value_name = "WORDS")]
    pub text: Option<String>,
}

/// Help for every incident id argument.
const ID_HELP: &str = "The incident's id, or a unique prefix of it (at least 6 hex digits)";

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(help = ID_HELP)]
    pub id: String,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("change").required(true).multiple(true)),
    override_usage = "cerctl incident update <ID> <CHANGE>...\n       \
                      (CHANGE: --status, --severity, --title, --description, --class, --note, --ioc, --tag)"
)]
pub struct UpdateArgs {
    #[arg(help = ID_HELP)]
    pub id: String,

    /// New status: new, open, contained, resolved or closed.
    #[arg(long, group = "change")]
    pub status: Option<Status>,

    /// New severity: low, medium, high or critical.
    #[arg(long, group = "change")]
    pub severity: Option<Severity>,

    /// New one-line title.
    #[arg(long, group = "change")]
    pub title: Option<String>,

    /// New description (replaces the old one).
    #[arg(long, group = "change")]
    pub description: Option<String>,

    /// New RSIT classification, `class/type`.
    #[arg(long, value_name = "CLASS/TYPE", group = "change", value_parser = Classification::parse)]
    pub class: Option<Classification>,

    /// A note for the timeline (any CERT may add one).
    #[arg(long, value_name = "TEXT", group = "change")]
    pub note: Option<String>,

    /// Add an indicator as type:value (repeatable). Types: ipv4, ipv6,
    /// cidr, domain, url, email, md5, sha1, sha256, sha512, asn, cve, filename.
    #[arg(long, value_name = "TYPE:VALUE", group = "change", value_parser = Indicator::parse_spec)]
    pub ioc: Vec<Indicator>,

    /// Until when the indicators given with --ioc stay active, RFC 3339;
    /// naming one the incident already has extends or shortens its life
    /// (only the incident's author decides it).
    #[arg(long, value_name = "TIME", requires = "ioc", value_parser = cer_proto::model::Timestamp::parse)]
    pub valid_until: Option<cer_proto::model::Timestamp>,

    /// Refuse indicators on one of the node's warninglists instead of
    /// warning.
    #[arg(long)]
    pub strict: bool,

    /// Expire an indicator of the incident now, as type:value
    /// (repeatable; the incident's author only).
    #[arg(long, value_name = "TYPE:VALUE", group = "change", value_parser = Indicator::parse_spec)]
    pub expire: Vec<Indicator>,

    /// Add a tag (repeatable).
    #[arg(long, group = "change", value_parser = normalize_tag)]
    pub tag: Vec<String>,

    /// Share this update under a stricter label than the incident's, e.g.
    /// an AMBER note on a GREEN incident (then only --note and --ioc).
    #[arg(long)]
    pub tlp: Option<Tlp>,

    /// A recipient of an update above the incident's TLP, by name or
    /// fingerprint (repeatable; TLP:AMBER defaults to every trusted CERT,
    /// and the incident's author always reads it).
    #[arg(long, value_name = "NAME|FPR", requires = "tlp")]
    pub to: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RetractArgs {
    #[arg(help = ID_HELP)]
    pub id: String,

    /// Why, shown to everyone who held the incident.
    #[arg(long)]
    pub reason: Option<String>,

    /// Withdraw only this envelope of yours (an update, note or sighting,
    /// as `incident update` printed it): what it added leaves the incident
    /// everywhere, the rest stays.
    #[arg(long, value_name = "ENVELOPE_ID")]
    pub envelope: Option<cer_proto::EnvelopeId>,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    #[arg(help = ID_HELP)]
    pub id: String,

    /// How far this CERT got: received, actioned or resolved.
    #[arg(long, default_value = "received", value_parser = clap::value_parser!(cer_proto::envelope::ReceiptState))]
    pub state: cer_proto::envelope::ReceiptState,

    /// A short comment for the author.
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IocCommand {
    /// Every incident and CERT that reported VALUE; exit 1 if none.
    ///
    /// An address also finds the CIDRs that contain it; a CIDR
    /// (192.0.2.0/24) finds every address and CIDR inside it and the CIDRs
    /// that contain it; *.example.com finds the domains below example.com
    /// (not example.com itself).
    Search(SearchArgs),
    /// Report that this CERT saw VALUE (or found it a false positive): a
    /// signed sighting on each incident that names it, or on --incident.
    Sight(SightArgs),
    /// Bulk indicators: a CSV (type,value,…) or a list of values becomes
    /// incidents of at most --per-incident indicators each (the same as
    /// `cerctl import --format csv|list`).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct SightArgs {
    /// The indicator value; its type is guessed unless --type is given.
    pub value: String,

    /// The indicator type (as for ioc search).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<IndicatorType>,

    /// Only on this incident (default: every incident here that names VALUE).
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,

    /// The indicator was harmless here: report it against the indicator
    /// instead of as a sighting.
    #[arg(long)]
    pub false_positive: bool,

    /// How many times it was seen.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u32,

    /// When it was seen, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", value_parser = cer_proto::model::Timestamp::parse)]
    pub at: Option<cer_proto::model::Timestamp>,

    /// A short comment for the incident's readers.
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The indicator value, a CIDR range or a *.domain pattern; its type is
    /// guessed unless --type is given.
    pub value: String,

    /// Read VALUE as this type: ipv4, ipv6, cidr, domain, url, email, md5,
    /// sha1, sha256, sha512, asn, cve or filename.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<IndicatorType>,

    /// At most this many matches (the daemon's default is 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=cer_proto::api::MAX_SEARCH_LIMIT as i64))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (mode 0600; never over an existing file).
    #[arg(long, value_name = "FILE")]
    pub out: std::path::PathBuf,

    /// Also the node's secret key. Without it, restoring needs the key
    /// file from elsewhere; with it, the backup is as sensitive as the key.
    #[arg(long)]
    pub include_secret_key: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Envelopes)]
    pub format: ExportFormat,

    /// Only this incident.
    #[arg(long, value_name = "ID")]
    pub incident: Option<Uuid>,

    /// Envelopes: write `<envelope id>.json` and `<envelope id>.sig` files
    /// into DIR (created if missing). Other formats: the file to write (a
    /// folder for misp-feed). Existing files and symbolic links are
    /// refused, never overwritten or followed.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

    /// Only incidents changed since this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = cer_proto::model::Timestamp::parse)]
    pub since: Option<cer_proto::model::Timestamp>,

    /// The highest TLP to export (default green). AMBER and RED must be
    /// named, and print a warning; what this node cannot read is never
    /// exported.
    #[arg(long, value_parser = clap::value_parser!(Tlp))]
    pub tlp: Option<Tlp>,

    /// Only indicators of these types (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Vec<IndicatorType>,

    /// Only incidents from this CERT (name or fingerprint).
    #[arg(long, value_name = "CERT")]
    pub from: Option<String>,

    /// Leave out expired indicators.
    #[arg(long)]
    pub active: bool,

    /// Also write FILE.asc, a detached signature by this node's key that
    /// `gpg --verify FILE.asc FILE` accepts (needs --out).
    #[arg(long)]
    pub sign: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import, a MISP feed folder, or - for standard input.
    pub path: String,

    /// auto (default: from the content; a folder is a MISP feed), stix,
    /// misp, misp-feed, csv or list.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// TLP for incidents whose source gives none.
    #[arg(long, value_parser = clap::value_parser!(Tlp))]
    pub tlp: Option<Tlp>,

    /// Severity for incidents whose source gives none.
    #[arg(long, value_parser = clap::value_parser!(Severity))]
    pub severity: Option<Severity>,

    /// Classification (RSIT class/type) for incidents whose source gives none.
    #[arg(long, value_name = "CLASS/TYPE", value_parser = Classification::parse)]
    pub class: Option<Classification>,

    /// For a list: the type of every line (default: guessed per line).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<IndicatorType>,

    /// For CSV and lists: at most this many indicators per incident.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub per_incident: usize,

    /// For CSV and lists: the incidents' title (default: from the file name).
    #[arg(long)]
    pub title: Option<String>,

    /// Import nothing if anything is invalid, and refuse warninglisted
    /// indicators.
    #[arg(long)]
    pub strict: bool,

    /// Show what would be imported; file nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Recipients (CERT names or fingerprints) for imported TLP:AMBER and
    /// RED incidents (repeatable; RED needs at least one).
    #[arg(long, value_name = "CERT")]
    pub to: Vec<String>,

    /// For a MISP feed: where to remember which events were imported
    /// (default: under $XDG_STATE_HOME/cerctl/misp-feeds/).
    #[arg(long, value_name = "FILE")]
    pub feed_state: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The signed envelopes as stored: exact JSON bytes and detached signatures.
    Envelopes,
    /// A STIX 2.1 bundle.
    Stix,
    /// MISP events (`{"response": [{"Event": …}]}`).
    Misp,
    /// A MISP feed folder (manifest.json, <uuid>.json, hashes.csv).
    MispFeed,
    /// One row per indicator.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum TaxiiCommand {
    /// Add, list and remove clients.
    #[command(subcommand)]
    Clients(TaxiiClientsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TaxiiClientsCommand {
    /// Add a client and print its token, once.
    Add {
        /// The client's name: ASCII letters, digits and - _ . (its HTTP
        /// Basic user name).
        name: String,
        /// The most restrictive TLP it may read: clear, green or amber.
        #[arg(long, value_name = "TLP")]
        max_tlp: cer_proto::model::Tlp,
        /// Allow it to post to the inbox collection.
        #[arg(long)]
        write: bool,
    },
    /// List clients (never their tokens).
    List,
    /// Remove a client; its next request is refused.
    Remove {
        /// The client's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List trusted certificates and refused files.
    List,
    /// Trust a CERT: add its certificate (ASCII-armored file) to the trust
    /// store; or revoke one: add its revocation certificate.
    Add {
        /// The certificate file, e.g. the peer's `<NAME>.asc`, or a
        /// revocation certificate such as `<NAME>-revocation.asc`.
        file: std::path::PathBuf,
    },
    /// Stop trusting a CERT; its node is disconnected within seconds.
    Remove {
        /// The CERT's name, its full fingerprint, or the last 16 hex
        /// digits of it as `cerctl peers` shows them.
        #[arg(value_name = "NAME|FPR")]
        cert: String,
    },
}

/// `--since`: resolved against the clock when the command runs, so
/// parsing stays pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(Timestamp),
}

impl Since {
    pub fn resolve(self, now: time::OffsetDateTime) -> Timestamp {
        match self {
            Since::At(at) => at,
            Since::Ago(ago) => {
                let ago = i128::try_from(ago.as_nanos()).unwrap_or(i128::MAX);
                Timestamp::from_unix_nanos(now.unix_timestamp_nanos().saturating_sub(ago))
            }
        }
    }
}

fn parse_since(raw: &str) -> Result<Since, String> {
    if let Ok(ago) = humantime::parse_duration(raw.trim()) {
        return Ok(Since::Ago(ago));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(raw.trim(), &date_format) {
        let midnight = date.midnight().assume_utc();
        return Ok(Since::At(Timestamp::from_unix_nanos(
            midnight.unix_timestamp_nanos(),
        )));
    }
    Timestamp::parse(raw)
        .map(Since::At)
        .map_err(|_| format!("expected a duration such as 24h or 7d, a date such as 2026-11-30, or an RFC 3339 time such as 2026-11-28T13:00:00Z, got '{raw}'"))
}

fn parse_class_pattern(raw: &str) -> Result<String, cer_proto::FieldError> {
    Classification::check_pattern(raw)?;
    let pattern = raw.trim().to_ascii_lowercase();
    // Send the canonical spelling, so aliases the parser accepts work too.
    Ok(match Classification::parse(&pattern) {
        Ok(class) => class.to_string(),
        Err(_) => pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cerctl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn file_flags_are_parsed_by_cer_proto() {
        let cli = parse(&[
            "incident",
            "file",
            "--title",
            "C2",
            "--severity",
            "HIGH",
            "--tlp",
            "TLP:AMBER",
            "--class",
            "malicious-code/c2-server",
            "--ioc",
            "ipv4:203.0.113.7",
            "--tag",
            "Botnet",
            "--country",
            "ke",
            "--to",
            "KE-CIRT",
        ])
        .unwrap();
        let Command::Incident(IncidentCommand::File(file)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(file.severity, Some(Severity::High));
        assert_eq!(file.tlp, Some(Tlp::Amber));
        assert_eq!(file.ioc.len(), 1);
        assert_eq!(file.tag, ["botnet"]);
        assert_eq!(file.to, ["KE-CIRT"]);
    }

    #[test]
    fn a_misspelled_severity_is_a_usage_error_naming_the_valid_values() {
        let err = parse(&[
            "incident",
            "file",
            "--title",
            "x",
            "--severity",
            "hgih",
            "--tlp",
            "green",
            "--class",
            "test/test",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(text.contains("hgih") && text.contains("critical"), "{text}");
    }

    #[test]
    fn a_bad_ioc_is_a_usage_error_with_the_reason() {
        let err = parse(&[
            "incident",
            "update",
            &Uuid::nil().to_string(),
            "--ioc",
            "sha256:abc",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("sha256"), "{err}");
        let err = parse(&[
            "incident",
            "update",
            &Uuid::nil().to_string(),
            "--ioc",
            "no-type-here",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn from_refuses_content_flags_and_replaces_required_ones() {
        assert!(parse(&["incident", "file", "--from", "-"]).is_ok());
        let err = parse(&["incident", "file", "--from", "-", "--title", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = parse(&["incident", "file", "--title", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn update_needs_a_change() {
        let err = parse(&["incident", "update", &Uuid::nil().to_string()]).unwrap_err();
        assert!(err.to_string().contains("<CHANGE>"), "{err}");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&[
            "incident",
            "update",
            &Uuid::nil().to_string(),
            "--note",
            "seen here too"
        ])
        .is_ok());
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = time::macros::datetime!(2026-11-28 13:00:00 UTC);
        assert_eq!(
            parse_since("24h").unwrap().resolve(now).to_string(),
            "2026-11-27T13:00:00Z"
        );
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z")
                .unwrap()
                .resolve(now)
                .to_string(),
            "2026-11-01T00:00:00Z"
        );
        assert!(parse_since("yesterday").unwrap_err().contains("24h"));
    }

    #[test]
    fn since_takes_a_date_from_midnight_utc() {
        let now = time::macros::datetime!(2026-12-02 13:00:00 UTC);
        assert_eq!(
            parse_since("2026-11-30").unwrap().resolve(now).to_string(),
            "2026-11-30T00:00:00Z"
        );
        assert!(parse_since("2026-11-31")
            .unwrap_err()
            .contains("2026-11-30"));
    }

    /// Every option and argument of every command says what it is for.
    #[test]
    fn every_option_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "cerctl", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    #[test]
    fn ioc_help_lists_every_indicator_type() {
        let mut command = Cli::command();
        for path in [
            &["incident", "file"][..],
            &["incident", "update"],
            &["ioc", "search"],
        ] {
            let mut sub = &mut command;
            for name in path {
                sub = sub.find_subcommand_mut(name).unwrap();
            }
            let help = sub.render_long_help().to_string();
            for kind in IndicatorType::ALL {
                assert!(
                    help.contains(kind.as_str()),
                    "{path:?} help lacks {kind}:\n{help}"
                );
            }
        }
    }

    #[test]
    fn update_usage_is_one_readable_line() {
        let mut command = Cli::command();
        let update = command
            .find_subcommand_mut("incident")
            .unwrap()
            .find_subcommand_mut("update")
            .unwrap();
        let usage = update.render_usage().to_string();
        let first = usage.lines().next().unwrap();
        assert!(first.len() <= 80, "{usage}");
        assert!(first.contains("update <ID> <CHANGE>..."), "{usage}");
    }

    #[test]
    fn class_patterns_are_checked() {
        assert_eq!(parse_class_pattern("Fraud/*").unwrap(), "fraud/*");
        assert_eq!(
            parse_class_pattern("fraud/phishing").unwrap(),
            "fraud/phishing"
        );
        assert!(parse_class_pattern("fraud/nope").is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "incident",
            "list",
            "--json",
            "--socket",
            "/tmp/x.sock",
            "--since",
            "1h",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn limit_is_bounded() {
        assert!(parse(&["incident", "list", "--limit", "0"]).is_err());
        assert!(parse(&["incident", "list", "--limit", "10"]).is_ok());
    }
}
