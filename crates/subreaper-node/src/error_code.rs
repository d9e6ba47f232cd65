//! The `code` of every error the addon throws. napi-rs creates the JavaScript error with
//! `napi_create_error(code, message)`, so JavaScript reads `err.code` and never parses a message.

use napi::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A second copy of the addon in this process; the first one runs the reaper.
    Duplicate,
    /// The platform has no such role (subreaper mode off Linux).
    Unsupported,
    /// The system refused (prctl failed).
    Os,
    /// `wait` of a pid that is not a child and whose exit is not known.
    NotAChild,
    /// A wait timed out.
    WaitTimeout,
    /// A napi-rs failure (argument conversion, a ThreadsafeFunction that could not be made).
    Napi(Status),
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        match self {
            ErrorCode::Duplicate => "ERR_SUBREAPER_DUPLICATE",
            ErrorCode::Unsupported => "ERR_SUBREAPER_UNSUPPORTED",
            ErrorCode::Os => "ERR_SUBREAPER_OS",
            ErrorCode::NotAChild => "ERR_SUBREAPER_NOT_A_CHILD",
            ErrorCode::WaitTimeout => "ERR_SUBREAPER_WAIT_TIMEOUT",
            ErrorCode::Napi(status) => status.as_ref(),
        }
    }
}

pub type Error = napi::Error<ErrorCode>;
pub type Result<T> = std::result::Result<T, Error>;

pub fn error(code: ErrorCode, message: impl ToString) -> Error {
    napi::Error::new(code, message)
}

/// Keeps a napi-rs error's status (as its code) and message.
pub fn from_napi(e: napi::Error) -> Error {
    napi::Error::new(ErrorCode::Napi(e.status), e.reason.clone())
}
