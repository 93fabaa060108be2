#![no_main]

use crossclr::project::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::CaptionsCsv.run(data));
