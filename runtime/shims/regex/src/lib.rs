pub use regex_lite::*;
