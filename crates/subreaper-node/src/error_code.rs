//! The `code` of every error the addon throws. napi-rs creates the JavaScript error with
//! `napi_create_error(code, message)`, so JavaScript reads `err.code` and never parses a message.
//!
//! The codes are written only here: `#[napi]` generates [`ErrorCode`] into the package's typings
//! (`native/binding.d.cts`), and `errors.cts` maps each code to its class, which its type check
//! requires for every code.

use napi_derive::napi;

/// Declares [`ErrorCode`] once for both sides: the `#[napi]` string enum JavaScript sees, and
/// [`ErrorCode::as_str`] for the errors Rust throws.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal,)*) => {
        /// The `code` of an error the addon throws (each has its class in `errors.cts`).
        #[napi(string_enum)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[napi(value = $code)] $name,)*
        }

        impl ErrorCode {
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }
        }
    };
}

// The docs are `#[doc = "..."]` rather than `///`: a `///` passed through `macro_rules!` reaches
// napi-rs as a raw string, which it would copy into the typings with its `r"`.
error_codes! {
    #[doc = "A second copy of the addon in this process; the first one runs the reaper."]
    Duplicate = "ERR_SUBREAPER_DUPLICATE",
    #[doc = "The platform has no such role (subreaper mode off Linux)."]
    Unsupported = "ERR_SUBREAPER_UNSUPPORTED",
    #[doc = "The system refused (prctl, or a signal that could not be sent)."]
    Os = "ERR_SUBREAPER_OS",
    #[doc = "`wait` of a pid that is not a child and whose exit is not known."]
    NotAChild = "ERR_SUBREAPER_NOT_A_CHILD",
    #[doc = "N-API failed (a callback that could not be made), or the addon was called against"]
    #[doc = "its contract: a bug in subreaper, never the user's input (the package checks that)."]
    Native = "ERR_SUBREAPER_NATIVE",
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

pub type Error = napi::Error<ErrorCode>;
pub type Result<T> = std::result::Result<T, Error>;

pub fn error(code: ErrorCode, message: impl ToString) -> Error {
    napi::Error::new(code, message)
}

/// A napi-rs failure as an [`ErrorCode::Native`] error, its status kept in the message.
pub fn from_napi(e: napi::Error) -> Error {
    native(format!("{} ({})", e.reason, e.status.as_ref()))
}

/// An [`ErrorCode::Native`] error.
pub fn native(message: impl ToString) -> Error {
    error(ErrorCode::Native, message)
}
