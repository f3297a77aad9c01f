#pragma once

/// @file sdk.hpp
/// The Barista plugin SDK: everything a plugin author includes.
///
/// A plugin is a shared library that defines one or more `barista::Processor` classes and
/// exports exactly one factory with `BARISTA_PLUGIN(name, version, factory)`.

#include <barista/abi.hpp>
#include <barista/context.hpp>
#include <barista/job.hpp>
#include <barista/outcome.hpp>
#include <barista/plugin.hpp>
#include <barista/plugin_config.hpp>
#include <barista/processor.hpp>
