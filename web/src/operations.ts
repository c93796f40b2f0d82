// The operations the ad manager sends: exactly the documents in graphql/operations/, which
// any frontend may use (the API's tests keep them valid against the schema).
import AdClicks from '../../graphql/operations/AdClicks.graphql?raw';
import FilterDimensions from '../../graphql/operations/FilterDimensions.graphql?raw';
import IngestStatus from '../../graphql/operations/IngestStatus.graphql?raw';
import RetentionPolicies from '../../graphql/operations/RetentionPolicies.graphql?raw';
import SetRetention from '../../graphql/operations/SetRetention.graphql?raw';
import TopAds from '../../graphql/operations/TopAds.graphql?raw';
import TopAdsInRange from '../../graphql/operations/TopAdsInRange.graphql?raw';
import TopAdsLive from '../../graphql/operations/TopAdsLive.graphql?raw';

export const operations = {
  AdClicks,
  FilterDimensions,
  IngestStatus,
  RetentionPolicies,
  SetRetention,
  TopAds,
  TopAdsInRange,
  TopAdsLive,
};

export type Filter = Record<string, string[]>;

export interface WindowInfo {
  from: string;
  to: string;
  minutes?: number;
  complete: boolean;
  watermark?: string | null;
  streamTime?: string | null;
}

export interface RankedAd {
  rank: number;
  adId: string;
  clicks: number;
}

export interface TopAdsAnswer {
  ads: RankedAd[];
  window: WindowInfo;
  filter: { dimension: string; values: string[] }[];
  source: string;
}

export interface TopList {
  windowStart: string;
  windowEnd: string;
  revision: number;
  ads: RankedAd[];
}

export interface AdClicksAnswer {
  adId: string;
  clicks: number;
  granularity: string;
  series: { start: string; clicks: number }[];
  window: WindowInfo;
  source: string;
}
